"""Developer tools: benchmarks, the soak, the DDS check, generators of docs and timing models.

Not needed to run the nodes; each module is a command (`python -m spatial_caption_ros.tools.X`,
console scripts and Makefile targets in the README). The user commands are in cli/.
"""
