"""Parameters of the scene memory (the memory node declares them; the core reads them).

Flat ROS parameter names, built with `build_config(MemoryConfig, {...})`. The numbers are
physical or statistical choices made before measuring (a 99 % chi-square gate, a Kinect's range,
a few frames of negative evidence), documented in docs/memory.md; none was fitted to the
evaluation data.
"""

from __future__ import annotations

from dataclasses import dataclass

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.params import CONFIGURE, param

VERIFY_METHODS = ('fundamental', 'homography')


@dataclass(frozen=True)
class MemoryConfig:
    """What the memory keeps, how it associates, when it reports changes, where it stores."""

    world_frame: str = param(
        '', 'Fixed frame the memory keeps positions in (e.g. odom or map), looked up in /tf and '
        '/tf_static at each scene graph stamp; a graph without that transform is not used. '
        'Empty (default, no frame a robot may lack): the camera frame of the graphs, valid '
        'only while the camera does not move, with a WARN diagnostic saying so.',
        when=CONFIGURE, max_length=256)
    transform_tolerance: float = param(
        0.1, 'Seconds a transform may be older or newer than a scene graph stamp; beyond '
        'that the graph is not used (stale transform, counted and in diagnostics).',
        minimum=0.0, maximum=10.0)
    gate_chi2: float = param(
        11.34, 'Association gate: largest squared Mahalanobis distance between an observation '
        'and a remembered object of its class (11.34 = 99 % for 3 degrees of freedom).',
        minimum=0.1, maximum=1000.0)
    max_association_distance: float = param(
        1.0, 'Metres beyond which an observation never joins a remembered object, whatever the '
        'uncertainty.', minimum=0.01, maximum=100.0)
    position_sigma_floor: float = param(
        0.02, 'Smallest standard deviation (m) of an observed position in any direction '
        '(calibration, pose and box-centre noise).', minimum=0.001, maximum=1.0)
    lateral_size_fraction: float = param(
        0.15, 'Across the line of sight, the standard deviation of an observed centre as a '
        'fraction of the object size (partial views move the box centre).', minimum=0.0,
        maximum=1.0)
    depth_sigma_fraction: float = param(
        0.1, 'Along the line of sight, the standard deviation as a fraction of the depth when '
        'the depth source gives no uncertainty.', minimum=0.0, maximum=1.0)
    confirm_observations: int = param(
        2, 'Observations before a new object counts as remembered (reported as appeared, '
        'answered by queries); single false detections stay tentative.', minimum=1,
        maximum=100)
    tentative_timeout: float = param(
        5.0, 'Seconds a tentative (unconfirmed) object is kept without a second observation.',
        minimum=0.0, maximum=3600.0)
    move_radius: float = param(
        2.0, 'Metres within which a newly seen object of a class may be a remembered one that '
        'moved: only once the old place has the negative evidence of `gone` and the new '
        'position is outside the association gate of the old one.', minimum=0.0,
        maximum=100.0)
    gone_after_frames: int = param(
        5, 'Least usable frames in a row in which a remembered object is checkably in view '
        '(see min_box_px, view_margin_px, min_range, max_range, occlusion_margin) and not '
        'detected before it is reported gone (or moved).', minimum=1, maximum=1000)
    gone_after_seconds: float = param(
        1.0, 'Least seconds between the first and the last of those misses: a burst of bad '
        'frames (a fast sweep, a flicker, someone passing) is shorter; a removal lasts.',
        minimum=0.0, maximum=3600.0)
    gone_miss_probability: float = param(
        0.01, 'A missed object is reported gone only once missing it that many usable frames '
        'in a row would have this probability or less if it were still there, given its own '
        'detection rate in usable frames while checkably in view (an often-missed object '
        'needs more misses).', minimum=1e-9, maximum=1.0)
    exposure_time: float = param(
        0.02, 'Seconds the camera exposes a frame, for the motion blur of a turning camera '
        '(angular speed from consecutive poses x exposure x focal length, in pixels); 20 ms is '
        'typical of RGB-D cameras indoors (10 to 30 ms at 30 Hz).', minimum=0.0, maximum=1.0)
    max_blur_fraction: float = param(
        0.1, "A miss counts only if the motion blur is at most this fraction of the object's "
        'projected size: smeared by a tenth of its size an object keeps its shape; more, and '
        'detectors lose it while it is still there.', minimum=0.0, maximum=10.0)
    min_detected_share: float = param(
        0.5, 'A frame is evidence that an object is missing only if the detector works on it: '
        'of the other remembered objects checkably in view it finds at least one, and at least '
        'this share of what it usually finds there (the sum of their own detection rates); a '
        'blurred or dark frame loses most objects at once.', minimum=0.0, maximum=1.0)
    min_box_px: float = param(
        32.0, "Smallest side (pixels) of an object's projected box for a miss to count: COCO's "
        'small-object limit (32 px), below which detectors find objects least often.',
        minimum=0.0, maximum=10000.0)
    min_range: float = param(
        0.3, 'Nearest depth (m) at which a missed object counts as negative evidence.',
        minimum=0.0, maximum=100.0)
    max_range: float = param(
        4.0, 'Farthest depth (m) at which a missed object counts as negative evidence (the '
        'detector misses small far objects).', minimum=0.1, maximum=1000.0)
    view_margin_px: float = param(
        20.0, "A remembered object's projected box (its remembered size) must lie this far "
        'inside the image for a miss to count (objects cut by the border are missed often).',
        minimum=0.0, maximum=1000.0)
    occlusion_margin: float = param(
        0.15, 'A detected object in front of a remembered position by more than this (m), '
        'covering its projection, occludes it (no negative evidence).', minimum=0.0,
        maximum=10.0)
    frames_per_object: int = param(
        20, 'Most recent frame stamps kept per object.', minimum=1, maximum=1000)
    max_objects: int = param(
        5000, 'Most objects remembered; beyond it the least recently seen are forgotten '
        '(gone ones first).', minimum=10, maximum=1000000)
    max_age: float = param(
        86400.0, 'Seconds after its last sighting an object (and a change older than this) is '
        'forgotten; 0: never.', minimum=0.0, maximum=1e9)
    max_changes: int = param(
        10000, 'Most change events kept for `changes since` queries.', minimum=10,
        maximum=10000000)
    keyframes: bool = param(
        True, 'Store keyframes (ORB features + graph signature) from the `image` topic for '
        'place retrieval.', when=CONFIGURE)
    keyframe_interval: float = param(
        0.5, 'Least seconds between two stored keyframes.', minimum=0.0, maximum=3600.0)
    max_keyframes: int = param(
        2000, 'Most keyframes stored; the oldest are forgotten first.', minimum=1,
        maximum=1000000)
    orb_features: int = param(
        500, 'ORB features per keyframe.', minimum=50, maximum=5000, when=CONFIGURE)
    retrieval_min_age: float = param(
        2.0, 'Only keyframes at least this many seconds older than the query are retrieved (a '
        'revisit, not the last frames).', minimum=0.0, maximum=1e6)
    retrieval_candidates: int = param(
        20, 'Keyframes ranked by graph signature that are re-ranked by ORB geometric '
        'verification.', minimum=1, maximum=1000)
    verification: str = param(
        'fundamental', 'Geometric verification of ORB matches: fundamental (any motion) or '
        'homography (rotation or a plane).', choices=VERIFY_METHODS)
    min_inliers: int = param(
        20, 'RANSAC inliers a retrieved keyframe needs to count as verified.', minimum=4,
        maximum=10000)
    database: str = param(
        ':memory:', 'SQLite file of the memory (WAL mode; survives restarts and kill -9); '
        ':memory: keeps nothing after the node stops. A corrupt file is moved aside and a fresh '
        'one started.', when=CONFIGURE, max_length=1024)
    facts_max_age: float = param(
        60.0, 'Seconds back that memory facts for captions reach ("the cup seen 10 s ago is '
        'still there").', minimum=0.0, maximum=1e6)

    def validate(self) -> None:
        """Cross-parameter checks."""
        if self.min_range >= self.max_range:
            raise ConfigError(f'min_range {self.min_range} must be below max_range '
                              f'{self.max_range}')
