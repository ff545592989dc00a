"""The scene memory as the node uses it: objects, keyframes, facts and storage in one update.

`SceneMemory.update` takes one scene graph, the camera's pose in the world frame, the camera
intrinsics and (optionally) the image: it fuses the objects (store.py), stores a keyframe when
one is due and retrieves earlier keyframes of the place (keyframes.py), derives the facts a
caption may state (facts.py), and writes everything that changed to SQLite in one transaction
(storage.py). Queries read the objects in RAM, never the disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import threading
import time

import numpy as np

from spatial_caption_ros.core.memory.config import MemoryConfig
from spatial_caption_ros.core.memory.facts import memory_facts, MemoryFact
from spatial_caption_ros.core.memory.keyframes import graph_signature, KeyframeIndex, \
    OrbExtractor, Retrieval
from spatial_caption_ros.core.memory.storage import MemoryDatabase
from spatial_caption_ros.core.memory.store import ObjectMemory, UpdateResult
from spatial_caption_ros.core.memory.transforms import Transform
from spatial_caption_ros.core.types import CameraIntrinsics, SceneGraph


@dataclass
class MemoryUpdate:
    """One update's result: the object changes, the place retrieval, the facts, the times."""

    result: UpdateResult
    place: Retrieval | None = None
    keyframe_id: int = 0
    facts: list[MemoryFact] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


class SceneMemory:
    """Objects + keyframes + storage; `lock` guards it against the node's service threads."""

    def __init__(self, config: MemoryConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.db = MemoryDatabase(config.database)
        self.objects = ObjectMemory(config)
        self.keyframes = KeyframeIndex(config)
        self.orb = OrbExtractor(config.orb_features) if config.keyframes else None
        objects, changes, keyframes = self.db.load(config.frames_per_object)
        for obj in objects.values():
            self.objects.put(obj)
        self.objects.changes = changes
        self.keyframes.keyframes = keyframes
        self.keyframes.next_id = max((k.id for k in keyframes), default=0) + 1

    def close(self) -> None:
        self.db.close()

    def set_config(self, config: MemoryConfig) -> None:
        """Apply live parameter changes."""
        with self.lock:
            self.config = self.objects.config = self.keyframes.config = config

    def update(self, graph: SceneGraph, camera_to_world: Transform,
               intrinsics: CameraIntrinsics | None,
               image: np.ndarray | None = None) -> MemoryUpdate:
        """Fuse one graph; keyframe and retrieval when an image is given and one is due."""
        t0, c0 = time.perf_counter(), time.thread_time()
        with self.lock:
            result = self.objects.update(graph, camera_to_world, intrinsics)
            out = MemoryUpdate(result)
            t1 = time.perf_counter()
            out.timings_ms['memory_update'] = (t1 - t0) * 1e3
            # CPU time of this thread: on a loaded machine the wall time includes waiting
            out.timings_ms['memory_update_cpu'] = (time.thread_time() - c0) * 1e3
            new_keyframes, dropped = [], []
            if image is not None and self.orb is not None and \
                    self.keyframes.due(graph.header.stamp_ns):
                features = self.orb(image)
                signature = graph_signature(graph)
                out.place = self.keyframes.retrieve(graph.header.stamp_ns, features, signature)
                if len(features):
                    pose = tuple(float(v) for v in camera_to_world.translation) + \
                        camera_to_world.quaternion
                    kf, dropped = self.keyframes.add(
                        graph.header.stamp_ns, features, signature, pose,
                        tuple(sorted({oid for _, oid in result.associations})))
                    new_keyframes.append(kf)
                    out.keyframe_id = kf.id
                out.timings_ms['keyframe'] = (time.perf_counter() - t1) * 1e3
            out.facts = memory_facts(self.objects, result, self.config.facts_max_age, out.place)
            t2 = time.perf_counter()
            horizon = graph.header.stamp_ns - int(self.config.max_age * 1e9) \
                if self.config.max_age > 0 else 0
            self.db.write([self.objects.objects[i] for i in sorted(result.touched)],
                          result.removed, result.changes, new_keyframes,
                          [k.id for k in dropped], horizon, self.config.max_changes)
            out.timings_ms['storage'] = (time.perf_counter() - t2) * 1e3
        return out
