"""Recorded data: rosbag2 recordings (sqlite3 and MCAP) captioned offline, without a ROS install.

reader.py opens a recording (salvaging what it can of a damaged one) and finds its topics,
processor.py runs the core stages on its frames, writer.py writes the results as an MCAP
recording, distributed.py spreads recordings over Ray; cli/bag.py is the command.
"""
