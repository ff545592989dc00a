"""Scene memory: objects that persist across frames, a world frame, changes, place retrieval.

config.py (parameters), transforms.py (frame tree when tf2_ros is absent), store.py (objects,
association, fusion, changes, queries), keyframes.py (ORB + graph signature, retrieval),
facts.py (checkable statements for captions), storage.py (SQLite), scene_memory.py (the update
the node runs), evaluation.py (the `memory` section of the evaluation).
"""
