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
from typing import NamedTuple

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
    class_name: str = ''                # the class with the most votes (kept by vote())

    def __post_init__(self) -> None:
        if self.class_votes:
            self.class_name = max(self.class_votes.items(), key=lambda kv: kv[1])[0]

    def vote(self, class_name: str, confidence: float) -> None:
        """Add a detection's confidence to its class's votes."""
        self.class_votes[class_name] = self.class_votes.get(class_name, 0.0) + confidence
        if self.class_votes[class_name] > self.class_votes.get(self.class_name, -1.0):
            self.class_name = class_name

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


class ObjectSnapshot(NamedTuple):
    """An immutable copy of a MemoryObject, for answers and change events.

    A NamedTuple: a query may return hundreds, and building one costs a few microseconds.
    """

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
    def of(cls, obj: MemoryObject, uncertainty: float | None = None) -> ObjectSnapshot:
        return cls(obj.id, obj.class_name, obj.class_confidence, tuple(obj.position.tolist()),
                   tuple(obj.covariance.ravel().tolist()),
                   obj.uncertainty if uncertainty is None else uncertainty,
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


_STATE_CODES = {TENTATIVE: 0, PRESENT: 1, GONE: 2}


class _Rows:
    """The objects as numpy rows (position, covariance, class, state, last seen, track id).

    Association, the "gone" evidence, forgetting and queries work on all objects at once with
    these arrays; the MemoryObject stays the record, and every change to one is written to its
    row by ObjectMemory._sync.
    """

    def __init__(self, capacity: int = 64) -> None:
        self.pos = np.zeros((capacity, 3))
        self.cov = np.zeros((capacity, 3, 3))
        self.cls = np.full(capacity, -1, np.int32)
        self.state = np.zeros(capacity, np.int8)
        self.last = np.zeros(capacity, np.int64)
        self.track = np.full(capacity, -1, np.int64)
        self.ids = np.zeros(capacity, np.int64)
        self.alive = np.zeros(capacity, bool)
        self.row: dict[int, int] = {}
        self.free: list[int] = []
        self.n = 0                     # rows in use or freed (high-water mark)

    def _grow(self) -> None:
        for name in ('pos', 'cov', 'cls', 'state', 'last', 'track', 'ids', 'alive'):
            a = getattr(self, name)
            grown = np.zeros((2 * a.shape[0],) + a.shape[1:], a.dtype)
            grown[:a.shape[0]] = a
            setattr(self, name, grown)

    def put(self, obj: MemoryObject, cls: int) -> None:
        r = self.row.get(obj.id)
        if r is None:
            if self.free:
                r = self.free.pop()
            else:
                if self.n == self.ids.shape[0]:
                    self._grow()
                r, self.n = self.n, self.n + 1
            self.row[obj.id] = r
        self.pos[r], self.cov[r], self.cls[r] = obj.position, obj.covariance, cls
        self.state[r], self.last[r] = _STATE_CODES[obj.state], obj.last_seen_ns
        self.track[r], self.ids[r], self.alive[r] = obj.last_track_id, obj.id, True

    def remove(self, oid: int) -> None:
        r = self.row.pop(oid)
        self.alive[r] = False
        self.free.append(r)


class ObjectMemory:
    """Remembered objects, their association, fusion, change detection and queries."""

    def __init__(self, config: MemoryConfig) -> None:
        self.config = config
        self.objects: dict[int, MemoryObject] = {}
        self.changes: deque[Change] = deque()
        self.next_id = 1
        self.discarded_tentative = 0
        self.forgotten = 0
        self._rows = _Rows()
        self._codes: dict[str, int] = {}

    def _code(self, class_name: str) -> int:
        return self._codes.setdefault(class_name, len(self._codes))

    def _sync(self, obj: MemoryObject) -> None:
        self._rows.put(obj, self._code(obj.class_name))

    def put(self, obj: MemoryObject) -> None:
        """Add (or replace) an object, e.g. one loaded from storage."""
        self.objects[obj.id] = obj
        self._sync(obj)
        self.next_id = max(self.next_id, obj.id + 1)

    def _delete(self, oid: int, result: UpdateResult) -> None:
        del self.objects[oid]
        self._rows.remove(oid)
        result.removed.add(oid)

    # ------------------------------------------------------------ update

    def update(self, graph: SceneGraph, camera_to_world: Transform,
               intrinsics: CameraIntrinsics | None) -> UpdateResult:
        """Fuse one scene graph (its camera pose given) into the memory; return the changes."""
        stamp = graph.header.stamp_ns
        result = UpdateResult(stamp)
        observations, result.skipped = observations_in_world(graph, camera_to_world, self.config)
        result.observations = observations
        matched = self._associate(observations, result)
        world_to_camera = camera_to_world.inverse()
        associated = {i for i, _ in result.associations}
        evidence = self._negative_evidence(graph, world_to_camera, intrinsics, matched)
        for obs in observations:
            if obs.index in associated:
                continue
            moved = self._moved_candidate(obs, evidence, matched, graph.objects[obs.index].box)
            if moved is not None:
                self._move(moved, obs, stamp, result)
                matched.add(moved.id)
                continue
            obj = MemoryObject(self.next_id, {obs.class_name: obs.confidence}, obs.position,
                               obs.covariance, stamp, stamp, last_track_id=obs.track_id,
                               frames=deque([stamp], maxlen=self.config.frames_per_object))
            self.next_id += 1
            self.objects[obj.id] = obj
            matched.add(obj.id)
            result.associations.append((obs.index, obj.id))
            result.touched.add(obj.id)
            if self.config.confirm_observations <= 1:
                self._confirm(obj, stamp, result, 'first sighting')
            self._sync(obj)
        self._apply_negative_evidence(evidence, matched, stamp, result)
        self._forget(stamp, result)
        return result

    def _associate(self, observations: list[Observation], result: UpdateResult) -> set[int]:
        """Greedy assignment by Mahalanobis distance within the gate, per class.

        All observation/object pairs of the same class within max_association_distance are
        scored at once (one batched solve), then taken best first.
        """
        rows, c = self._rows, self.config
        codes = [self._codes.get(o.class_name, -2) for o in observations]
        live = np.flatnonzero(rows.alive[:rows.n])
        if not observations or live.size == 0:
            return set()
        obs_pos = np.stack([o.position for o in observations])
        diff = rows.pos[live][None, :, :] - obs_pos[:, None, :]
        cand = (np.asarray(codes)[:, None] == rows.cls[live][None, :]) & (
            np.einsum('mni,mni->mn', diff, diff) <= c.max_association_distance ** 2)
        k_idx, l_idx = np.nonzero(cand)
        if k_idx.size == 0:
            return set()
        d = diff[k_idx, l_idx]
        r_idx = live[l_idx]
        s = rows.cov[r_idx] + np.stack([observations[k].covariance for k in k_idx])
        chi2 = np.einsum('ni,ni->n', d, np.linalg.solve(s, d[..., None])[..., 0])
        # the tracker's id continuing on the same object is a tie-breaker, never a gate
        tracks = np.array([observations[k].track_id for k in k_idx])
        cost = chi2 - 0.5 * (rows.track[r_idx] == tracks)
        used_obs: set[int] = set()
        used: set[int] = set()
        for j in np.argsort(cost, kind='stable'):
            k, r = int(k_idx[j]), int(r_idx[j])
            if chi2[j] > c.gate_chi2 or k in used_obs or r in used:
                continue
            used_obs.add(k)
            used.add(r)
            self._fuse(self.objects[int(rows.ids[r])], observations[k], result)
        return {int(rows.ids[r]) for r in used}

    def _fuse(self, obj: MemoryObject, obs: Observation, result: UpdateResult) -> None:
        """Static-object Kalman update of the position; votes, counts, frames."""
        stamp = result.stamp_ns
        s = obj.covariance + obs.covariance
        gain = obj.covariance @ np.linalg.inv(s)
        obj.position = obj.position + gain @ (obs.position - obj.position)
        cov = (np.eye(3) - gain) @ obj.covariance
        obj.covariance = 0.5 * (cov + cov.T)
        self._sighted(obj, obs, result)
        if obj.state == TENTATIVE and obj.times_seen >= self.config.confirm_observations:
            self._confirm(obj, stamp, result, f'seen {obj.times_seen} times')
        elif obj.state == GONE:
            obj.state = PRESENT
            self._record(Change(APPEARED, stamp, ObjectSnapshot.of(obj),
                                evidence='seen again where it had gone'), result)
        self._sync(obj)

    def _sighted(self, obj: MemoryObject, obs: Observation, result: UpdateResult) -> None:
        """What every sighting records: votes, stamps, counts, the track id."""
        obj.vote(obs.class_name, obs.confidence)
        obj.last_seen_ns = max(obj.last_seen_ns, result.stamp_ns)
        obj.times_seen += 1
        obj.frames.append(result.stamp_ns)
        obj.missed_in_view = 0
        obj.last_track_id = obs.track_id
        result.associations.append((obs.index, obj.id))
        result.touched.add(obj.id)

    def _confirm(self, obj: MemoryObject, stamp: int, result: UpdateResult, why: str) -> None:
        obj.state = PRESENT
        self._record(Change(APPEARED, stamp, ObjectSnapshot.of(obj), evidence=why), result)

    def _move(self, obj: MemoryObject, obs: Observation, stamp: int,
              result: UpdateResult) -> None:
        previous = tuple(float(v) for v in obj.position)
        obj.position, obj.covariance = obs.position.copy(), obs.covariance.copy()
        self._sighted(obj, obs, result)
        obj.state = PRESENT
        self._record(Change(MOVED, stamp, ObjectSnapshot.of(obj), previous,
                            'seen elsewhere while its old place was in view and empty'), result)
        self._sync(obj)

    def _record(self, change: Change, result: UpdateResult) -> None:
        result.changes.append(change)
        self.changes.append(change)
        while len(self.changes) > self.config.max_changes:
            self.changes.popleft()

    # ------------------------------------------------------------ negative evidence

    def _negative_evidence(self, graph: SceneGraph, world_to_camera: Transform,
                           intrinsics: CameraIntrinsics | None,
                           matched: set[int]) -> dict[int, tuple[float, float]]:
        """Present objects not seen now whose place is checkable: id -> pixel (u, v).

        Checkable: projects inside the image (view_margin_px), depth within min_range ..
        max_range, and no detected object covering the projection lies occlusion_margin or
        more in front of it.
        """
        rows, c = self._rows, self.config
        if intrinsics is None:
            return {}
        sel = np.flatnonzero(rows.alive[:rows.n] & (rows.state[:rows.n] == _STATE_CODES[
            PRESENT]))
        if matched:
            sel = sel[~np.isin(rows.ids[sel], list(matched))]
        if sel.size == 0:
            return {}
        p = world_to_camera.apply(rows.pos[sel])
        z = p[:, 2]
        with np.errstate(divide='ignore', invalid='ignore'):
            u = intrinsics.fx * p[:, 0] / z + intrinsics.cx
            v = intrinsics.fy * p[:, 1] / z + intrinsics.cy
        m = c.view_margin_px
        ok = (z >= max(c.min_range, 1e-6)) & (z <= c.max_range) & (u >= m) & \
            (u <= intrinsics.width - m) & (v >= m) & (v <= intrinsics.height - m)
        front = [(o.box.as_tuple(), o.depth) for o in graph.objects
                 if o.depth_metric and math.isfinite(o.depth)]
        if front and ok.any():
            boxes = np.array([b for b, _ in front])
            depths = np.array([d for _, d in front])
            covered = (u[:, None] >= boxes[:, 0]) & (u[:, None] <= boxes[:, 2]) & \
                (v[:, None] >= boxes[:, 1]) & (v[:, None] <= boxes[:, 3]) & \
                (depths[None, :] < z[:, None] - c.occlusion_margin)
            ok &= ~covered.any(axis=1)
        return {int(rows.ids[r]): (float(uu), float(vv))
                for r, uu, vv in zip(sel[ok], u[ok], v[ok], strict=True)}

    def _moved_candidate(self, obs: Observation, evidence: dict[int, tuple[float, float]],
                         matched: set[int], box) -> MemoryObject | None:
        """A remembered object of the class whose old place is verifiably empty, nearest first.

        Not one whose old place projects inside this observation's own box: that is the same
        object seen with a depth error, not a move.
        """
        if self.config.move_radius <= 0:
            return None
        best, best_d = None, self.config.move_radius
        for oid, (u, v) in evidence.items():
            obj = self.objects[oid]
            if oid in matched or obj.class_name != obs.class_name:
                continue
            d = float(np.linalg.norm(obj.position - obs.position))
            if d > best_d or (box.x_min <= u <= box.x_max and box.y_min <= v <= box.y_max):
                continue
            best, best_d = obj, d
        return best

    def _apply_negative_evidence(self, evidence: dict[int, tuple[float, float]],
                                 matched: set[int], stamp: int, result: UpdateResult) -> None:
        for oid in evidence:
            obj = self.objects.get(oid)
            if obj is None or oid in matched or obj.state != PRESENT:
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
                self._sync(obj)

    # ------------------------------------------------------------ bounds

    def _forget(self, stamp: int, result: UpdateResult) -> None:
        rows, c = self._rows, self.config
        alive = rows.alive[:rows.n]
        last = rows.last[:rows.n]
        drop = alive & (rows.state[:rows.n] == _STATE_CODES[TENTATIVE]) & (
            last < stamp - int(c.tentative_timeout * 1e9))
        self.discarded_tentative += int(drop.sum())
        if c.max_age > 0:
            old = alive & ~drop & (last < stamp - int(c.max_age * 1e9))
            self.forgotten += int(old.sum())
            drop |= old
            horizon = stamp - int(c.max_age * 1e9)
            while self.changes and self.changes[0].stamp_ns < horizon:
                self.changes.popleft()
        for r in np.flatnonzero(drop):
            self._delete(int(rows.ids[r]), result)
        excess = len(self.objects) - c.max_objects
        if excess > 0:
            live = np.flatnonzero(rows.alive[:rows.n])
            # gone ones first, then the least recently seen
            order = np.lexsort((rows.last[live], rows.state[live] != _STATE_CODES[GONE]))
            for r in live[order[:excess]]:
                self._delete(int(rows.ids[r]), result)
            self.forgotten += excess
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
        rows = self._rows
        n = rows.n
        state = rows.state[:n]
        mask = rows.alive[:n] & ((state == _STATE_CODES[PRESENT]) | (
            include_gone & (state == _STATE_CODES[GONE]))) & (rows.last[:n] >= since_ns)
        if near_object:
            ref = self.objects.get(near_object)
            if ref is None or not ref.confirmed:
                raise KeyError(f'no remembered object with id {near_object}')
            point = tuple(ref.position)
            mask[rows.row[near_object]] = False
        if class_name:
            code = self._codes.get(class_name)
            if code is None:
                return []
            mask &= rows.cls[:n] == code
        sel = np.flatnonzero(mask)
        if point is not None:
            d = np.linalg.norm(rows.pos[sel] - np.asarray(point, dtype=np.float64), axis=1)
            if radius > 0:
                sel, d = sel[d <= radius], d[d <= radius]
            sel = sel[np.argsort(d, kind='stable')]
        else:
            sel = sel[np.argsort(-rows.last[sel], kind='stable')]
        if max_results > 0:
            sel = sel[:max_results]
        if sel.size == 0:
            return []
        sigma = np.sqrt(np.maximum(np.linalg.eigvalsh(rows.cov[sel])[:, -1], 0.0))
        return [ObjectSnapshot.of(self.objects[int(rows.ids[r])], float(s))
                for r, s in zip(sel, sigma, strict=True)]

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
