"""The object memory: one entry per physical object, fused over frames, with changes and queries.

Each scene graph's objects with a metric 3D position become observations in the world frame
(camera pose from tf) with a covariance: wide along the line of sight (the depth uncertainty),
narrow across it (a fraction of the object size). An observation joins the remembered object of
its class with the smallest Mahalanobis distance inside the chi-square gate (and within
`max_association_distance`); the position is fused as a static-object Kalman update, so the
uncertainty shrinks with every sighting. Box overlap plays no part: two sightings from opposite
sides of a room associate by position.

Changes need evidence. An object is *checkable* in a frame when its projected box (remembered
size) lies `view_margin_px` inside the image, is at least `min_box_px` on its smaller side and
at least 1 / `max_blur_fraction` times the motion blur (the camera's angular speed between
consecutive poses x `exposure_time` x focal length), its depth is within `min_range` ..
`max_range` and no nearer detection covers it. The frame is *usable* for it when the detector is
working (it finds other checkable objects about as often as usual, `min_detected_share`).
- appeared: a new object confirmed by `confirm_observations` sightings, or a gone one seen again;
- gone: a remembered object checkable and undetected in `gone_after_frames` usable frames in a
  row spanning `gone_after_seconds`, and so many that missing it this often would be unlikely
  (`gone_miss_probability`) at its own detection rate in usable frames;
- moved: the old place has that negative evidence, and an object of the class first seen after
  the old one's last sighting lies within `move_radius` but outside the association gate of the
  old position (inconsistent beyond both uncertainties); the old entry takes the new position.
Two entries of a class whose fused positions become consistent (inside the gate) and which were
never seen in the same frame are merged into one (fragmentation from early, uncertain depth).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
import math
from typing import NamedTuple

import numpy as np

from spatial_caption_ros.core.rotations import rotation_angle
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
    missed_in_view: int = 0             # misses in a row while checkable in a usable frame
    misses_total: int = 0               # such misses ever (detection rate in view)
    last_track_id: int = -1
    size: float = 0.0                   # mean metric size (m) of its sightings, 0 unknown
    size_n: int = 0                     # sightings with a metric size
    seen_in_view: int = 0               # sightings while checkable in a usable frame
    miss_since_ns: int = 0              # stamp of the first miss of the current run
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

        Mean of the Beta posterior (uniform prior); the misses in a row being tested are left
        out, or they would lower the rate they are judged by.
        """
        earlier_misses = self.misses_total - self.missed_in_view
        return (self.seen_in_view + 1) / (self.seen_in_view + earlier_misses + 2)

    def miss_probability(self) -> float:
        """Probability of missing it missed_in_view times in a row if it were still there.

        The posterior predictive of the Beta-Binomial (uniform prior on the detection rate,
        updated by its sightings and earlier misses while checkably in view): unlike
        (1 - rate) ** k it stays large while the rate is known from few frames, so an object
        seen in view once needs 13 misses at 1 %, one seen 20 times without a miss 3.
        """
        a = self.seen_in_view + 1.0
        b = self.misses_total - self.missed_in_view + 1.0
        k = self.missed_in_view
        return math.exp(math.lgamma(b + k) + math.lgamma(a + b) - math.lgamma(b) -
                        math.lgamma(a + b + k))

    def add_size(self, size: float, n: int = 1) -> None:
        """Running mean of the metric size (n: sightings the value stands for)."""
        if n > 0 and size > 0:
            self.size_n += n
            self.size += (size - self.size) * n / self.size_n


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
    size: float = 0.0          # metric size (m), 0 unknown


@dataclass
class UpdateResult:
    """What one scene graph did to the memory."""

    stamp_ns: int
    associations: list[tuple[int, int]] = field(default_factory=list)   # (graph index, id)
    observations: list[Observation] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)     # ids created or modified
    removed: set[int] = field(default_factory=set)     # ids forgotten
    merged: dict[int, int] = field(default_factory=dict)   # id absorbed -> id it joined
    skipped: int = 0           # objects without a metric 3D position
    angular_speed: float = 0.0  # deg/s of the camera since the previous graph
    evidence: str = ''         # why this frame gave no negative evidence ('' it could)


def object_size(obj: SceneObject) -> float:
    """Mean of the metric width and height (m) that are known; 0 when neither is."""
    sizes = [s for s in (obj.metric_width, obj.metric_height) if math.isfinite(s) and s > 0]
    return float(sum(sizes) / len(sizes)) if sizes else 0.0


def observation_covariances(points: np.ndarray, sizes: np.ndarray, depth_sigmas: np.ndarray,
                            config: MemoryConfig) -> np.ndarray:
    """Covariances (N, 3, 3) of object centres at camera-frame points (N, 3).

    Along the ray the depth sigma (depth_sigma_fraction of the distance where it is unknown),
    across it lateral_size_fraction of the size; both with the floor position_sigma_floor.
    """
    dist = np.linalg.norm(points, axis=1)
    ray = np.where(dist[:, None] > 1e-9, points / np.maximum(dist, 1e-9)[:, None],
                   np.array([0.0, 0.0, 1.0]))
    floor = config.position_sigma_floor
    depth_sigmas = np.where(np.isfinite(depth_sigmas) & (depth_sigmas > 0), depth_sigmas,
                            config.depth_sigma_fraction * dist)
    along = floor * floor + depth_sigmas * depth_sigmas
    across = floor * floor + (config.lateral_size_fraction * sizes) ** 2
    outer = ray[:, :, None] * ray[:, None, :]
    return along[:, None, None] * outer + across[:, None, None] * (np.eye(3) - outer)


def observations_in_world(graph: SceneGraph, camera_to_world: Transform,
                          config: MemoryConfig) -> tuple[list[Observation], int]:
    """The graph's objects with a metric position, in the world frame; and how many had none."""
    kept = [(i, obj) for i, obj in enumerate(graph.objects)
            if obj.position is not None and obj.depth_metric and all(
                math.isfinite(v) for v in obj.position)]
    skipped = len(graph.objects) - len(kept)
    if not kept:
        return [], skipped
    r, t = camera_to_world.rotation, camera_to_world.translation
    points = np.array([obj.position for _, obj in kept], dtype=np.float64)
    sizes = np.array([object_size(obj) for _, obj in kept])
    cov = observation_covariances(points, sizes, np.array(
        [obj.depth_uncertainty for _, obj in kept], dtype=np.float64), config)
    cov = r @ cov @ r.T
    world = points @ r.T + t
    return [Observation(i, obj.class_name, float(obj.confidence), world[n], cov[n], t,
                        int(obj.id), float(sizes[n]))
            for n, (i, obj) in enumerate(kept)], skipped


def checkable_in_view(points: np.ndarray, sizes: np.ndarray, intrinsics: CameraIntrinsics,
                      config: MemoryConfig, blur_px: float = 0.0) -> tuple[np.ndarray, ...]:
    """Which camera-frame points (N, 3) of objects of these sizes (m) a detector should find.

    The projected box lies view_margin_px inside the image and is at least min_box_px on its
    smaller side, and at least 1 / max_blur_fraction times the motion blur (blur_px), the depth
    within min_range .. max_range. Returns (mask, u, v, z).
    """
    c = config
    z = points[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        u = intrinsics.fx * points[:, 0] / z + intrinsics.cx
        v = intrinsics.fy * points[:, 1] / z + intrinsics.cy
        hu = 0.5 * sizes * intrinsics.fx / z
        hv = 0.5 * sizes * intrinsics.fy / z
    m = c.view_margin_px
    ok = (z >= max(c.min_range, 1e-6)) & (z <= c.max_range) & (u - hu >= m) & \
        (u + hu <= intrinsics.width - m) & (v - hv >= m) & \
        (v + hv <= intrinsics.height - m) & (2.0 * np.minimum(hu, hv) >= max(
            c.min_box_px, blur_px / max(c.max_blur_fraction, 1e-9)))
    return ok, u, v, z


_STATE_CODES = {TENTATIVE: 0, PRESENT: 1, GONE: 2}


def _chi2(d: np.ndarray, cov: np.ndarray) -> float:
    """Squared Mahalanobis length of d under covariance cov."""
    return float(d @ np.linalg.solve(cov, d))


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
        self.size = np.zeros(capacity)
        self.ids = np.zeros(capacity, np.int64)
        self.alive = np.zeros(capacity, bool)
        self.row: dict[int, int] = {}
        self.free: list[int] = []
        self.n = 0                     # rows in use or freed (high-water mark)

    def _grow(self) -> None:
        for name in ('pos', 'cov', 'cls', 'state', 'last', 'track', 'size', 'ids', 'alive'):
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
        self.size[r] = obj.size

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
        self.merges = 0
        # frames that gave no negative evidence, by reason (diagnostics, evaluation)
        self.unusable_frames: dict[str, int] = {}
        self._rows = _Rows()
        self._codes: dict[str, int] = {}
        self._last_view: tuple[int, np.ndarray] | None = None    # stamp, camera rotation
        self._confirmed_now: list[MemoryObject] = []

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
        self._confirmed_now = []
        matched = self._associate(observations, result)
        associated = {i for i, _ in result.associations}
        for obs in observations:
            if obs.index in associated:
                continue
            obj = MemoryObject(self.next_id, {obs.class_name: obs.confidence}, obs.position,
                               obs.covariance, stamp, stamp, last_track_id=obs.track_id,
                               frames=deque([stamp], maxlen=self.config.frames_per_object))
            obj.add_size(obs.size)
            self.next_id += 1
            self.objects[obj.id] = obj
            matched.add(obj.id)
            result.associations.append((obs.index, obj.id))
            result.touched.add(obj.id)
            if self.config.confirm_observations <= 1:
                obj.state = PRESENT
                self._confirmed_now.append(obj)
            self._sync(obj)
        for obj in self._confirmed_now:
            self._announce(obj, result)
        result.angular_speed = self._angular_speed(stamp, camera_to_world)
        self._negative_evidence(graph, camera_to_world.inverse(), intrinsics, matched, result)
        self._merge_duplicates(result)
        self._forget(stamp, result)
        return result

    def _angular_speed(self, stamp: int, camera_to_world: Transform) -> float:
        """Degrees per second the camera turned since the previous graph (0 for the first)."""
        previous, self._last_view = self._last_view, (stamp, camera_to_world.rotation)
        if previous is None or stamp <= previous[0]:
            return 0.0
        turn = rotation_angle(previous[1].T @ camera_to_world.rotation)
        return math.degrees(turn) / ((stamp - previous[0]) / 1e9)

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
        pairs = []
        for j in np.argsort(cost, kind='stable'):
            k, r = int(k_idx[j]), int(r_idx[j])
            if chi2[j] > c.gate_chi2 or k in used_obs or r in used:
                continue
            used_obs.add(k)
            used.add(r)
            pairs.append((k, r))
        if pairs:
            self._fuse([(self.objects[int(rows.ids[r])], observations[k]) for k, r in pairs],
                       result)
        return {int(rows.ids[r]) for r in used}

    def _fuse(self, pairs: list[tuple[MemoryObject, Observation]],
              result: UpdateResult) -> None:
        """Static-object Kalman updates of the objects by their observations (batched).

        Then each object's votes, counts and frames.
        """
        stamp = result.stamp_ns
        p = np.stack([o.position for o, _ in pairs])
        cov = np.stack([o.covariance for o, _ in pairs])
        z = np.stack([obs.position for _, obs in pairs])
        s = cov + np.stack([obs.covariance for _, obs in pairs])
        # gain = C S^-1; C and S are symmetric, so gain^T = S^-1 C
        gain = np.linalg.solve(s, cov).transpose(0, 2, 1)
        pos = p + np.einsum('nij,nj->ni', gain, z - p)
        cov = cov - gain @ cov
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        for (obj, obs), new_p, new_c in zip(pairs, pos, cov, strict=True):
            obj.position, obj.covariance = new_p, new_c
            self._sighted(obj, obs, result)
            if obj.state == TENTATIVE and obj.times_seen >= self.config.confirm_observations:
                obj.state = PRESENT
                self._confirmed_now.append(obj)
            elif obj.state == GONE:
                obj.state = PRESENT
                self._record(Change(APPEARED, stamp, ObjectSnapshot.of(obj),
                                    evidence='seen again where it had gone'), result)
            self._sync(obj)

    def _sighted(self, obj: MemoryObject, obs: Observation, result: UpdateResult) -> None:
        """What every sighting records: votes, stamps, counts, size, the track id."""
        obj.vote(obs.class_name, obs.confidence)
        obj.last_seen_ns = max(obj.last_seen_ns, result.stamp_ns)
        obj.times_seen += 1
        obj.frames.append(result.stamp_ns)
        obj.missed_in_view = 0
        obj.miss_since_ns = 0
        obj.last_track_id = obs.track_id
        obj.add_size(obs.size)
        result.associations.append((obs.index, obj.id))
        result.touched.add(obj.id)

    def _announce(self, obj: MemoryObject, result: UpdateResult) -> None:
        """A newly confirmed object: a gone one of its class that moved here, or appeared."""
        if obj.id not in self.objects:
            return
        old = self._move_partner(obj, find_new=False)
        if old is not None:
            self._moved(old, obj, result, f'it had gone from its old place '
                        f'{float(np.linalg.norm(obj.position - old.position)):.2f} m away; the '
                        f'{obj.class_name} first seen here since then is taken as it')
            return
        self._record(Change(APPEARED, result.stamp_ns, ObjectSnapshot.of(obj), evidence=(
            f'first seen, {obj.times_seen} sightings: new to the memory (not evidence that it '
            'was absent before)')), result)

    def _move_partner(self, known: MemoryObject, find_new: bool) -> MemoryObject | None:
        """The other end of a possible move of `known`, nearest first, or None.

        find_new: `known` is the old entry and a present one is sought; else `known` is newly
        confirmed and a gone one is sought. Same class, within move_radius, the new one first
        seen after the old one's last sighting, and the new position outside the association
        gate of the old one (inconsistent beyond both uncertainties: not the same place seen
        with a depth error).
        """
        c = self.config
        best, best_d = None, c.move_radius
        state = PRESENT if find_new else GONE
        for obj in self.objects.values():
            old, new = (known, obj) if find_new else (obj, known)
            if obj.state != state or obj.id == known.id or obj.class_name != known.class_name \
                    or new.first_seen_ns <= old.last_seen_ns:
                continue
            d = new.position - old.position
            dist = float(np.linalg.norm(d))
            if dist > best_d or _chi2(d, old.covariance + new.covariance) <= c.gate_chi2:
                continue
            best, best_d = obj, dist
        return best

    def _moved(self, old: MemoryObject, new: MemoryObject, result: UpdateResult,
               evidence: str) -> None:
        """`old` moved to where `new` is: old keeps its id, takes new's place and sightings."""
        previous = tuple(float(v) for v in old.position)
        old.position, old.covariance = new.position.copy(), new.covariance.copy()
        self._absorb(old, new, result)
        old.state = PRESENT
        old.missed_in_view = 0
        old.miss_since_ns = 0
        self._record(Change(MOVED, result.stamp_ns, ObjectSnapshot.of(old), previous,
                            evidence), result)
        self._sync(old)

    def _absorb(self, keep: MemoryObject, other: MemoryObject, result: UpdateResult) -> None:
        """Fold other's sightings into keep and forget other (its id now means keep)."""
        for name, votes in other.class_votes.items():
            keep.vote(name, votes)
        keep.first_seen_ns = min(keep.first_seen_ns, other.first_seen_ns)
        keep.last_seen_ns = max(keep.last_seen_ns, other.last_seen_ns)
        keep.times_seen += other.times_seen
        keep.seen_in_view += other.seen_in_view
        keep.add_size(other.size, other.size_n)
        frames = sorted(set(keep.frames) | set(other.frames))
        keep.frames = deque(frames[-self.config.frames_per_object:],
                            maxlen=self.config.frames_per_object)
        if other.last_seen_ns >= keep.last_seen_ns:
            keep.last_track_id = other.last_track_id
        self._delete(other.id, result)
        result.touched.add(keep.id)
        result.merged[other.id] = keep.id
        for old, new in list(result.merged.items()):
            if new == other.id:
                result.merged[old] = keep.id
        result.associations = [(i, keep.id if oid == other.id else oid)
                               for i, oid in result.associations]

    def _record(self, change: Change, result: UpdateResult) -> None:
        result.changes.append(change)
        self.changes.append(change)
        while len(self.changes) > self.config.max_changes:
            self.changes.popleft()

    # ------------------------------------------------------------ negative evidence

    def _negative_evidence(self, graph: SceneGraph, world_to_camera: Transform,
                           intrinsics: CameraIntrinsics | None, matched: set[int],
                           result: UpdateResult) -> None:
        """Count this frame's sightings and misses of the present objects checkably in view.

        Checkable: the projected box (remembered size) lies view_margin_px inside the image
        and is min_box_px or more on its smaller side, the depth is within min_range ..
        max_range, and (when undetected) no detection covering the projection lies
        occlusion_margin or more in front. The camera's turn since the previous graph smears
        the image by angular speed x exposure_time x focal length pixels; an object counts only
        if that is at most max_blur_fraction of its projected size. The frame must be usable
        for it: the detector found at least one of the other checkable objects, and at least
        min_detected_share of the number it usually finds (the sum of their detection rates).
        """
        rows, c = self._rows, self.config
        if intrinsics is None:
            self.unusable_frames['no camera_info'] = \
                self.unusable_frames.get('no camera_info', 0) + 1
            result.evidence = 'no camera_info'
            return
        sel = np.flatnonzero(rows.alive[:rows.n] & (rows.state[:rows.n] == _STATE_CODES[
            PRESENT]))
        if sel.size == 0:
            return
        blur = math.radians(result.angular_speed) * c.exposure_time * max(intrinsics.fx,
                                                                           intrinsics.fy)
        ok, u, v, z = checkable_in_view(world_to_camera.apply(rows.pos[sel]), rows.size[sel],
                                        intrinsics, c, blur)
        if not ok.any():
            if (rows.size[sel] > 0).any() and blur > 0 and checkable_in_view(
                    world_to_camera.apply(rows.pos[sel]), rows.size[sel], intrinsics, c)[0].any():
                result.evidence = 'motion blur'     # in view, but smeared beyond recognition
                self.unusable_frames['motion blur'] = \
                    self.unusable_frames.get('motion blur', 0) + 1
            return
        detected = np.isin(rows.ids[sel], list(matched)) if matched else np.zeros(sel.size, bool)
        front = [(o.box.as_tuple(), o.depth) for o in graph.objects
                 if o.depth_metric and math.isfinite(o.depth)]
        if front:
            boxes = np.array([b for b, _ in front])
            depths = np.array([d for _, d in front])
            covered = (u[:, None] >= boxes[:, 0]) & (u[:, None] <= boxes[:, 2]) & \
                (v[:, None] >= boxes[:, 1]) & (v[:, None] <= boxes[:, 3]) & \
                (depths[None, :] < z[:, None] - c.occlusion_margin)
            ok &= detected | ~covered.any(axis=1)
        objs = [self.objects[int(i)] for i in rows.ids[sel[ok]]]
        seen_now = detected[ok]
        # how many of them the detector usually finds here: each one's own detection rate
        rates = np.array([o.detection_rate for o in objs])
        expected, found = float(rates.sum()), int(seen_now.sum())
        for obj, seen, rate in zip(objs, seen_now, rates, strict=True):
            others_found = found - int(seen)
            if others_found < 1 or others_found < c.min_detected_share * (expected - rate):
                continue            # the detector is not working on this frame (for it)
            if obj.id not in self.objects or obj.state != PRESENT:
                continue            # taken into a move earlier in this loop
            if seen:
                obj.seen_in_view += 1
            else:
                self._missed(obj, result)
        if found == 0 or found < c.min_detected_share * expected:
            self.unusable_frames['detector'] = self.unusable_frames.get('detector', 0) + 1
            result.evidence = 'detector'

    def _missed(self, obj: MemoryObject, result: UpdateResult) -> None:
        """One usable miss; gone (or moved) once the misses are many, long and unlikely."""
        c, stamp = self.config, result.stamp_ns
        if obj.missed_in_view == 0:
            obj.miss_since_ns = stamp
        obj.missed_in_view += 1
        obj.misses_total += 1
        result.touched.add(obj.id)
        span = (stamp - obj.miss_since_ns) / 1e9
        if obj.missed_in_view < c.gone_after_frames or span < c.gone_after_seconds or \
                obj.miss_probability() > c.gone_miss_probability:
            return
        why = (f'in view, not occluded and within range, but not detected in '
               f'{obj.missed_in_view} usable frames in a row over {span:.1f} s '
               f'(chance if still there {obj.miss_probability():.1g})')
        new = self._move_partner(obj, find_new=True)
        if new is not None:
            self._moved(obj, new, result, f'{why}; the {new.class_name} first seen since then '
                        f'{float(np.linalg.norm(new.position - obj.position)):.2f} m away is '
                        'taken as it')
            return
        obj.state = GONE
        self._record(Change(GONE, stamp, ObjectSnapshot.of(obj), evidence=why), result)
        self._sync(obj)

    # ------------------------------------------------------------ duplicates

    def _merge_duplicates(self, result: UpdateResult) -> None:
        """Merge entries of a class whose fused positions became consistent.

        Inside the gate and within max_association_distance of each other, and never detected
        in the same frame (two detections in one frame are two objects).
        """
        rows, c = self._rows, self.config
        # only positions that changed this frame (sightings) can have become consistent
        touched = [self.objects[i] for i in {oid for _, oid in result.associations}
                   if i in self.objects and self.objects[i].state != GONE]
        live = np.flatnonzero(rows.alive[:rows.n] & (rows.state[:rows.n] != _STATE_CODES[GONE]))
        if not touched or live.size < 2:
            return
        pos = np.stack([o.position for o in touched])
        codes = np.array([self._codes[o.class_name] for o in touched])
        diff = rows.pos[live][None, :, :] - pos[:, None, :]
        near = (codes[:, None] == rows.cls[live][None, :]) & (
            np.einsum('mni,mni->mn', diff, diff) <= c.max_association_distance ** 2)
        k_idx, l_idx = np.nonzero(near & (rows.ids[live][None, :] != np.array(
            [o.id for o in touched])[:, None]))
        if k_idx.size == 0:
            return
        d = diff[k_idx, l_idx]
        s = rows.cov[live[l_idx]] + np.stack([touched[k].covariance for k in k_idx])
        chi2 = np.einsum('ni,ni->n', d, np.linalg.solve(s, d[..., None])[..., 0])
        for j in np.flatnonzero(chi2 <= c.gate_chi2):
            a = touched[int(k_idx[j])]
            b = self.objects.get(int(rows.ids[live[l_idx[j]]]))
            if b is None or a.id not in self.objects or set(a.frames) & set(b.frames) or \
                    _chi2(b.position - a.position, a.covariance + b.covariance) > c.gate_chi2:
                continue        # gone, merged already, seen together, or moved by a merge
            # the confirmed one (the id others know), else the older one, keeps its id
            keep, other = sorted((a, b), key=lambda o: (o.state == TENTATIVE, o.first_seen_ns,
                                                        o.id))
            info_k, info_o = np.linalg.inv(keep.covariance), np.linalg.inv(other.covariance)
            cov = np.linalg.inv(info_k + info_o)
            keep.position = cov @ (info_k @ keep.position + info_o @ other.position)
            keep.covariance = 0.5 * (cov + cov.T)
            if other.state == PRESENT:
                keep.state = PRESENT
            self._absorb(keep, other, result)
            self.merges += 1
            self._sync(keep)

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
