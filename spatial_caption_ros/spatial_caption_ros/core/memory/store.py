"""The object memory: one entry per physical object, fused over frames, with changes and queries.

Each scene graph's objects with a metric 3D position become observations in the world frame
(camera pose from tf) with a covariance: wide along the line of sight (the depth uncertainty),
narrow across it (a fraction of the object size). An observation joins the remembered object of
its class with the smallest Mahalanobis distance inside the chi-square gate (and within
`max_association_distance`); the position is fused as a static-object Kalman update, so the
uncertainty shrinks with every sighting. Box overlap plays no part: two sightings from opposite
sides of a room associate by position.

Changes need evidence:
- appeared: a new object confirmed by `confirm_observations` sightings, or a gone one seen again;
- moved: an observation matches nothing, a remembered object of its class within `move_radius`
  was not seen this frame, and its old place is in view, unoccluded, within range and not covered
  by the observation's own box (the same object with a depth error);
- gone: a remembered object in view, not occluded by a nearer detected object, within depth
  range, undetected for `gone_after_frames` frames in a row, and for so many that missing it
  this often would be unlikely (`gone_miss_probability`) at its own detection rate in view.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
import math

import numpy as np

from spatial_caption_ros.core.memory.config import MemoryConfig
from spatial_caption_ros.core.memory.transforms import Transform
from spatial_caption_ros.core.types import CameraIntrinsics, SceneGraph, SceneObject

PRESENT = 'present'
GONE = 'gone'
TENTATIVE = 'tentative'
APPEARED = 'appeared'
MOVED = 'moved'
CHANGE_KINDS = (APPEARED, MOVED, GONE)


@dataclass
class MemoryObject:
    """One remembered physical object (positions and covariance in the world frame)."""

    id: int
    class_votes: dict[str, float]
    position: np.ndarray                 # (3,)
    covariance: np.ndarray               # (3, 3)
    first_seen_ns: int
    last_seen_ns: int
    times_seen: int = 1
    state: str = TENTATIVE
    frames: deque = field(default_factory=deque)   # stamps (ns) of the latest sightings
    missed_in_view: int = 0             # checkable misses in a row
    misses_total: int = 0               # checkable misses ever (detection rate in view)
    last_track_id: int = -1

    @property
    def class_name(self) -> str:
        return max(self.class_votes.items(), key=lambda kv: kv[1])[0]

    @property
    def class_confidence(self) -> float:
        """Share of the class votes (summed detection confidences) held by the top class."""
        total = sum(self.class_votes.values())
        return self.class_votes[self.class_name] / total if total > 0 else 0.0

    @property
    def uncertainty(self) -> float:
        """Standard deviation (m) along the least certain direction."""
        return math.sqrt(max(0.0, float(np.linalg.eigvalsh(self.covariance)[-1])))

    @property
    def confirmed(self) -> bool:
        return self.state != TENTATIVE

    @property
    def detection_rate(self) -> float:
        """How often it was detected when checkably in view, before the current run of misses.

        Laplace estimate; the misses in a row being tested are left out, or they would lower
        the rate they are judged by.
        """
        earlier_misses = self.misses_total - self.missed_in_view
        return (self.times_seen + 1) / (self.times_seen + earlier_misses + 2)

    def miss_probability(self) -> float:
        """Probability of missing it missed_in_view times in a row if it were still there."""
        return (1.0 - self.detection_rate) ** self.missed_in_view


@dataclass(frozen=True)
class ObjectSnapshot:
    """An immutable copy of a MemoryObject, for answers and change events."""

    id: int
    class_name: str
    class_confidence: float
    position: tuple[float, float, float]
    covariance: tuple[float, ...]        # 9 values, row-major
    uncertainty: float
    first_seen_ns: int
    last_seen_ns: int
    times_seen: int
    state: str
    frames: tuple[int, ...]

    @classmethod
    def of(cls, obj: MemoryObject) -> ObjectSnapshot:
        return cls(obj.id, obj.class_name, obj.class_confidence,
                   tuple(float(v) for v in obj.position),
                   tuple(float(v) for v in obj.covariance.reshape(-1)), obj.uncertainty,
                   obj.first_seen_ns, obj.last_seen_ns, obj.times_seen, obj.state,
                   tuple(obj.frames))


@dataclass(frozen=True)
class Change:
    """A change event: what happened to which object, when, and the evidence."""

    kind: str
    stamp_ns: int
    object: ObjectSnapshot
    previous_position: tuple[float, float, float] | None = None
    evidence: str = ''

    @property
    def distance(self) -> float:
        if self.previous_position is None:
            return math.nan
        return float(np.linalg.norm(np.subtract(self.object.position, self.previous_position)))


@dataclass
class Observation:
    """One scene object as seen in the world frame."""

    index: int                 # position in the graph's object list
    class_name: str
    confidence: float
    position: np.ndarray       # world frame
    covariance: np.ndarray     # world frame
    camera_position: np.ndarray
    track_id: int


@dataclass
class UpdateResult:
    """What one scene graph did to the memory."""

    stamp_ns: int
    associations: list[tuple[int, int]] = field(default_factory=list)   # (graph index, id)
    observations: list[Observation] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)     # ids created or modified
    removed: set[int] = field(default_factory=set)     # ids forgotten
    skipped: int = 0           # objects without a metric 3D position


def observation_covariance(obj: SceneObject, config: MemoryConfig) -> np.ndarray:
    """Covariance (camera frame) of an object's centre: along the ray, and across it."""
    p = np.asarray(obj.position, dtype=np.float64)
    dist = float(np.linalg.norm(p))
    ray = p / dist if dist > 1e-9 else np.array([0.0, 0.0, 1.0])
    floor = config.position_sigma_floor
    sizes = [s for s in (obj.metric_width, obj.metric_height) if math.isfinite(s) and s > 0]
    size = float(np.mean(sizes)) if sizes else 0.0
    depth_sigma = obj.depth_uncertainty
    if not math.isfinite(depth_sigma) or depth_sigma <= 0:
        depth_sigma = config.depth_sigma_fraction * dist
    along = math.hypot(floor, depth_sigma)
    across = math.hypot(floor, config.lateral_size_fraction * size)
    outer = np.outer(ray, ray)
    return along * along * outer + across * across * (np.eye(3) - outer)


def observations_in_world(graph: SceneGraph, camera_to_world: Transform,
                          config: MemoryConfig) -> tuple[list[Observation], int]:
    """The graph's objects with a metric position, in the world frame; and how many had none."""
    out: list[Observation] = []
    skipped = 0
    r, t = camera_to_world.rotation, camera_to_world.translation
    for i, obj in enumerate(graph.objects):
        if obj.position is None or not obj.depth_metric or not all(
                math.isfinite(v) for v in obj.position):
            skipped += 1
            continue
        cov = r @ observation_covariance(obj, config) @ r.T
        out.append(Observation(i, obj.class_name, float(obj.confidence),
                               r @ np.asarray(obj.position, dtype=np.float64) + t, cov, t.copy(),
                               int(obj.id)))
    return out, skipped


class ObjectMemory:
    """Remembered objects, their association, fusion, change detection and queries."""

    def __init__(self, config: MemoryConfig) -> None:
        self.config = config
        self.objects: dict[int, MemoryObject] = {}
        self.changes: deque[Change] = deque()
        self.next_id = 1
        self.discarded_tentative = 0
        self.forgotten = 0

    # ------------------------------------------------------------ update

    def update(self, graph: SceneGraph, camera_to_world: Transform,
               intrinsics: CameraIntrinsics | None) -> UpdateResult:
        """Fuse one scene graph (its camera pose given) into the memory; return the changes."""
        stamp = graph.header.stamp_ns
        result = UpdateResult(stamp)
        observations, result.skipped = observations_in_world(graph, camera_to_world, self.config)
        result.observations = observations
        matched_ids = self._associate(observations, result)
        world_to_camera = camera_to_world.inverse()
        unmatched = [o for o in observations
                     if o.index not in {i for i, _ in result.associations}]
        evidence = self._negative_evidence(graph, world_to_camera, intrinsics, matched_ids)
        for obs in unmatched:
            moved = self._moved_candidate(obs, evidence, matched_ids, graph, world_to_camera,
                                          intrinsics)
            if moved is not None:
                self._move(moved, obs, stamp, result)
                matched_ids.add(moved.id)
                continue
            obj = MemoryObject(self.next_id, {obs.class_name: obs.confidence}, obs.position,
                               obs.covariance, stamp, stamp, last_track_id=obs.track_id)
            obj.frames = deque([stamp], maxlen=self.config.frames_per_object)
            self.next_id += 1
            self.objects[obj.id] = obj
            matched_ids.add(obj.id)
            result.associations.append((obs.index, obj.id))
            result.touched.add(obj.id)
            if self.config.confirm_observations <= 1:
                self._confirm(obj, stamp, result, 'first sighting')
        self._apply_negative_evidence(evidence, matched_ids, stamp, result)
        self._forget(stamp, result)
        return result

    def _associate(self, observations: list[Observation], result: UpdateResult) -> set[int]:
        """Greedy assignment by Mahalanobis distance within the gate, per class."""
        candidates = list(self.objects.values())
        if not observations or not candidates:
            return set()
        ids = np.array([o.id for o in candidates])
        classes = np.array([o.class_name for o in candidates])
        pos = np.stack([o.position for o in candidates])
        cov = np.stack([o.covariance for o in candidates])
        tracks = np.array([o.last_track_id for o in candidates])
        pairs: list[tuple[float, int, int]] = []
        for k, obs in enumerate(observations):
            sel = np.flatnonzero(classes == obs.class_name)
            if sel.size == 0:
                continue
            diff = pos[sel] - obs.position
            dist = np.linalg.norm(diff, axis=1)
            s = cov[sel] + obs.covariance
            chi2 = np.einsum('ni,ni->n', diff, np.linalg.solve(s, diff[..., None])[..., 0])
            ok = (chi2 <= self.config.gate_chi2) & (dist <= self.config.max_association_distance)
            for j in np.flatnonzero(ok):
                # the tracker's id continuing on the same object is a tie-breaker, never a gate
                cost = float(chi2[j]) - (0.5 if tracks[sel[j]] == obs.track_id else 0.0)
                pairs.append((cost, k, int(sel[j])))
        pairs.sort()
        used_obs: set[int] = set()
        used: set[int] = set()
        stamp = result.stamp_ns
        for _, k, j in pairs:
            if k in used_obs or j in used:
                continue
            used_obs.add(k)
            used.add(j)
            obj = self.objects[int(ids[j])]
            self._fuse(obj, observations[k], stamp, result)
        return {int(ids[j]) for j in used}

    def _fuse(self, obj: MemoryObject, obs: Observation, stamp: int,
              result: UpdateResult) -> None:
        """Static-object Kalman update of the position; votes, counts, frames."""
        s = obj.covariance + obs.covariance
        gain = obj.covariance @ np.linalg.inv(s)
        obj.position = obj.position + gain @ (obs.position - obj.position)
        cov = (np.eye(3) - gain) @ obj.covariance
        obj.covariance = 0.5 * (cov + cov.T)
        obj.class_votes[obs.class_name] = obj.class_votes.get(obs.class_name, 0.0) + \
            obs.confidence
        obj.last_seen_ns = max(obj.last_seen_ns, stamp)
        obj.times_seen += 1
        obj.frames.append(stamp)
        obj.missed_in_view = 0
        obj.last_track_id = obs.track_id
        result.associations.append((obs.index, obj.id))
        result.touched.add(obj.id)
        if obj.state == TENTATIVE and obj.times_seen >= self.config.confirm_observations:
            self._confirm(obj, stamp, result, f'seen {obj.times_seen} times')
        elif obj.state == GONE:
            obj.state = PRESENT
            self._record(Change(APPEARED, stamp, ObjectSnapshot.of(obj),
                                evidence='seen again where it had gone'), result)

    def _confirm(self, obj: MemoryObject, stamp: int, result: UpdateResult, why: str) -> None:
        obj.state = PRESENT
        self._record(Change(APPEARED, stamp, ObjectSnapshot.of(obj), evidence=why), result)

    def _move(self, obj: MemoryObject, obs: Observation, stamp: int,
              result: UpdateResult) -> None:
        previous = tuple(float(v) for v in obj.position)
        obj.position, obj.covariance = obs.position.copy(), obs.covariance.copy()
        obj.class_votes[obs.class_name] = obj.class_votes.get(obs.class_name, 0.0) + \
            obs.confidence
        obj.last_seen_ns = stamp
        obj.times_seen += 1
        obj.frames.append(stamp)
        obj.missed_in_view = 0
        obj.last_track_id = obs.track_id
        obj.state = PRESENT
        result.associations.append((obs.index, obj.id))
        result.touched.add(obj.id)
        self._record(Change(MOVED, stamp, ObjectSnapshot.of(obj), previous,
                            'seen elsewhere while its old place was in view and empty'), result)

    def _record(self, change: Change, result: UpdateResult) -> None:
        result.changes.append(change)
        self.changes.append(change)
        while len(self.changes) > self.config.max_changes:
            self.changes.popleft()

    # ------------------------------------------------------------ negative evidence

    def _negative_evidence(self, graph: SceneGraph, world_to_camera: Transform,
                           intrinsics: CameraIntrinsics | None,
                           matched: set[int]) -> dict[int, str]:
        """Confirmed objects not seen now whose place is checkable: id -> '' or why not."""
        out: dict[int, str] = {}
        if intrinsics is None:
            return out
        objs = [o for o in self.objects.values() if o.confirmed and o.id not in matched]
        if not objs:
            return out
        cam = world_to_camera.apply(np.stack([o.position for o in objs]))
        boxes = [(o.box, o.depth) for o in graph.objects
                 if o.depth_metric and math.isfinite(o.depth)]
        c = self.config
        for obj, p in zip(objs, cam, strict=True):
            out[obj.id] = _visibility(p, intrinsics, boxes, c)
        return out

    def _moved_candidate(self, obs: Observation, evidence: dict[int, str], matched: set[int],
                         graph: SceneGraph, world_to_camera: Transform,
                         intrinsics: CameraIntrinsics | None) -> MemoryObject | None:
        """A remembered object of the class whose old place is verifiably empty, nearest first."""
        if intrinsics is None or self.config.move_radius <= 0:
            return None
        box = graph.objects[obs.index].box
        best, best_d = None, self.config.move_radius
        for oid, why in evidence.items():
            obj = self.objects[oid]
            if why or oid in matched or obj.class_name != obs.class_name:
                continue
            d = float(np.linalg.norm(obj.position - obs.position))
            if d > best_d:
                continue
            u, v, _ = _project(world_to_camera.apply(obj.position), intrinsics)
            if box.x_min <= u <= box.x_max and box.y_min <= v <= box.y_max:
                continue     # its old place is inside this very box: a depth error, not a move
            best, best_d = obj, d
        return best

    def _apply_negative_evidence(self, evidence: dict[int, str], matched: set[int], stamp: int,
                                 result: UpdateResult) -> None:
        for oid, why in evidence.items():
            obj = self.objects.get(oid)
            if obj is None or oid in matched or obj.state != PRESENT:
                continue
            if why:
                continue
            obj.missed_in_view += 1
            obj.misses_total += 1
            result.touched.add(oid)
            if obj.missed_in_view >= self.config.gone_after_frames and \
                    obj.miss_probability() <= self.config.gone_miss_probability:
                obj.state = GONE
                self._record(Change(GONE, stamp, ObjectSnapshot.of(obj), evidence=(
                    f'in view, not occluded and within range, but not detected in '
                    f'{obj.missed_in_view} frames in a row')), result)

    # ------------------------------------------------------------ bounds

    def _forget(self, stamp: int, result: UpdateResult) -> None:
        c = self.config
        timeout = int(c.tentative_timeout * 1e9)
        for oid, obj in list(self.objects.items()):
            if obj.state == TENTATIVE and stamp - obj.last_seen_ns > timeout:
                del self.objects[oid]
                self.discarded_tentative += 1
                result.removed.add(oid)
        if c.max_age > 0:
            horizon = stamp - int(c.max_age * 1e9)
            for oid, obj in list(self.objects.items()):
                if obj.last_seen_ns < horizon:
                    del self.objects[oid]
                    self.forgotten += 1
                    result.removed.add(oid)
            while self.changes and self.changes[0].stamp_ns < horizon:
                self.changes.popleft()
        excess = len(self.objects) - c.max_objects
        if excess > 0:
            order = sorted(self.objects.values(),
                           key=lambda o: (o.state != GONE, o.last_seen_ns))
            for obj in order[:excess]:
                del self.objects[obj.id]
                self.forgotten += 1
                result.removed.add(obj.id)
        result.touched -= result.removed

    # ------------------------------------------------------------ queries

    def remembered(self, include_gone: bool = True) -> list[MemoryObject]:
        """Confirmed objects (the tentative ones are not remembered yet)."""
        return [o for o in self.objects.values()
                if o.confirmed and (include_gone or o.state != GONE)]

    def query(self, class_name: str = '', point: tuple[float, float, float] | None = None,
              radius: float = 0.0, near_object: int = 0, since_ns: int = 0,
              include_gone: bool = False, max_results: int = 0) -> list[ObjectSnapshot]:
        """Objects of a class, near a point or another object (within a radius), seen since.

        Sorted by distance when a point or object is given, else most recently seen first.
        near_object: an id whose position is the point (the object itself is left out); an
        unknown id raises KeyError.
        """
        exclude = 0
        if near_object:
            ref = self.objects.get(near_object)
            if ref is None or not ref.confirmed:
                raise KeyError(f'no remembered object with id {near_object}')
            point, exclude = tuple(ref.position), near_object
        hits = []
        for obj in self.remembered(include_gone):
            if obj.id == exclude or (class_name and obj.class_name != class_name):
                continue
            if obj.last_seen_ns < since_ns:
                continue
            d = float(np.linalg.norm(obj.position - np.asarray(point))) if point else 0.0
            if point is not None and radius > 0 and d > radius:
                continue
            hits.append((d if point is not None else -obj.last_seen_ns, obj))
        hits.sort(key=lambda h: h[0])
        if max_results > 0:
            hits = hits[:max_results]
        return [ObjectSnapshot.of(o) for _, o in hits]

    def last_seen(self, object_id: int = 0, class_name: str = '') -> ObjectSnapshot | None:
        """Where and when an object (by id, or the latest of a class) was last seen."""
        if object_id:
            obj = self.objects.get(object_id)
            return ObjectSnapshot.of(obj) if obj is not None and obj.confirmed else None
        found = self.query(class_name=class_name, include_gone=True, max_results=1)
        return found[0] if found else None

    def changes_since(self, since_ns: int = 0, kind: str = '') -> list[Change]:
        """Change events stamped at or after since_ns (of one kind, or all), oldest first."""
        return [c for c in self.changes if c.stamp_ns >= since_ns and (not kind or
                                                                       c.kind == kind)]


def _project(p: np.ndarray, intrinsics: CameraIntrinsics) -> tuple[float, float, float]:
    z = float(p[2])
    if z <= 1e-6:
        return math.nan, math.nan, z
    return (intrinsics.fx * p[0] / z + intrinsics.cx, intrinsics.fy * p[1] / z + intrinsics.cy,
            z)


def _visibility(p: np.ndarray, intrinsics: CameraIntrinsics, boxes, c: MemoryConfig) -> str:
    """'' when a camera-frame point should be seen now, else why it cannot count as missed."""
    u, v, z = _project(p, intrinsics)
    if not c.min_range <= z <= c.max_range:
        return 'out of range' if z > 0 else 'behind the camera'
    m = c.view_margin_px
    if not (m <= u <= intrinsics.width - m and m <= v <= intrinsics.height - m):
        return 'out of view'
    for box, depth in boxes:
        if box.x_min <= u <= box.x_max and box.y_min <= v <= box.y_max and \
                depth < z - c.occlusion_margin:
            return 'occluded'
    return ''
