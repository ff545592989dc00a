"""Frames from a folder of images, one image file or a video file, and their camera intrinsics.

Intrinsics for every frame, best first (`IntrinsicsResolver`): a calibration (`camera_info_url`,
the ROS camera_info_manager way: file:///path/camera.yaml in camera_calibration format, or
`camera_info_file`: such a YAML or a KITTI calib file); the photo's EXIF focal length
(exif.py); an assumed horizontal field of view (`assumed_hfov_deg`), marked `assumed` so the
scene graph and the caption say that metric values rest on an assumption.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import cv2
import numpy as np
import yaml

from spatial_caption_ros.core.errors import ConfigError, InvalidCameraInfoError, InvalidImageError
from spatial_caption_ros.core.inputs.exif import exif_intrinsics
from spatial_caption_ros.core.inputs.image import ColorImage, read_image_file
from spatial_caption_ros.core.params import CONFIGURE, param
from spatial_caption_ros.core.types import CameraIntrinsics

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v')
PACE_TOPICS = ('', 'detections', 'scene_graph', 'caption')
# Files a photo folder often holds beside its images (labels, notes): not frames, not named.
SIDECAR_SUFFIXES = ('.txt', '.md', '.json', '.yaml', '.yml', '.csv', '.xml')


@dataclass(frozen=True)
class ImageSourceConfig:
    """Parameters of the image source node."""

    source: str = param(
        '', 'Folder of images, one image file or a video file to publish.', when=CONFIGURE)
    rate: float = param(2.0, 'Frames per second published.', minimum=0.01, maximum=1000.0)
    loop: bool = param(False, 'Start again from the first frame after the last one.')
    frame_id: str = param('camera_optical_frame', 'frame_id of the published images.',
                          when=CONFIGURE, max_length=256)
    camera_info_file: str = param(
        '', 'Calibration for CameraInfo: a ROS camera_info YAML (camera_calibration format) or '
            'a KITTI calib file (P2). Empty: see camera_info_url.', when=CONFIGURE)
    assumed_hfov_deg: float = param(
        60.0, 'Without a calibration and without an EXIF focal length, publish CameraInfo of '
              'an ideal camera with this horizontal field of view, marked as ASSUMED (the '
              'scene graph and captions say so: "roughly 8 m"); 0: publish no CameraInfo.',
        minimum=0.0, maximum=179.0, when=CONFIGURE)
    pace_on: str = param(
        '', 'Wait for the output of this stage (detections, scene_graph or caption) for each '
            'frame before publishing the next, so a batch run processes every frame; empty: '
            'publish at `rate` regardless.', choices=PACE_TOPICS, when=CONFIGURE)
    pace_timeout: float = param(
        30.0, 'Seconds to wait for a paced output before moving on (logged, counted).',
        minimum=0.1, maximum=3600.0)
    min_subscribers: int = param(
        0, 'Publish a frame only when the image topic has at least this many matched '
           'subscribers (batch runs: no frame is lost to DDS discovery); 0: publish regardless, '
           'as a camera does.', minimum=0, maximum=64)

    camera_info_url: str = param(
        '', 'Calibration the ROS way (camera_info_manager URL): file:///path/camera.yaml '
            '(camera_calibration YAML) or a plain path. Empty: camera_info_file, else the EXIF '
            'focal length of each photo (use_exif), else assumed_hfov_deg.', when=CONFIGURE)
    use_exif: bool = param(
        True, 'Without a calibration, take intrinsics from the EXIF focal length of each photo '
              'when it has one.', when=CONFIGURE)
    folder_is_sequence: bool = param(
        False, 'true: the files of a folder are consecutive frames of one camera (frames '
               'extracted from a video, a TUM or KITTI sequence) and are tracked as one '
               'sequence, like a video. false: each file is a still photo of its own, a new '
               'sequence (new_sequence_service is called before it).', when=CONFIGURE)
    new_sequence_service: str = param(
        'perception/new_sequence', 'std_srvs/Trigger service called before each still photo of '
        'a folder, and answered before the photo is published, so that the tracker and the '
        'depth smoothing downstream start afresh instead of taking objects of two unrelated '
        "photos for one (the perception node's ~/new_sequence). Empty: not called.",
        when=CONFIGURE, max_length=256)

    def validate(self) -> None:
        if self.camera_info_file and self.camera_info_url:
            raise ConfigError('give camera_info_url or camera_info_file, not both')
        if self.camera_info_url:
            calibration_path(self.camera_info_url)


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder, sorted by name."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def not_images(folder: str | Path) -> list[tuple[str, str]]:
    """(name, why) of each file of a folder that is not taken as a frame.

    So that none is dropped without a word; hidden files and label or notes files
    (SIDECAR_SUFFIXES) are not listed.
    """
    out = []
    for p in sorted(Path(folder).iterdir()):
        suffix = p.suffix.lower()
        if (not p.is_file() or p.name.startswith('.')
                or suffix in IMAGE_SUFFIXES + SIDECAR_SUFFIXES):
            continue
        why = ('a video: give it on its own as the source' if suffix in VIDEO_SUFFIXES else
               f'{suffix or "no suffix"}: not an image type read here '
               f'({", ".join(IMAGE_SUFFIXES)})')
        out.append((p.name, why))
    return out


class FrameSource:
    """Iterates frames (name, image) from a folder, an image file or a video file."""

    def __init__(self, source: str | Path) -> None:
        path = Path(source).expanduser()
        if not source or not path.exists():
            raise ConfigError(f'image source {str(source)!r} does not exist')
        self.path = path
        # files of a folder that are not frames: (name, why), named by the node and the runner
        self.ignored: list[tuple[str, str]] = []
        if path.is_dir():
            self.kind = 'folder'
            self.files = list_images(path)
            self.ignored = not_images(path)
            if not self.files:
                found = ''.join(f'; {name} ({why})' for name, why in self.ignored)
                raise ConfigError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {path}'
                                  + (f': {found[2:]}' if found else ''))
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            self.kind, self.files = 'image', [path]
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            self.kind, self.files = 'video', []
            cap = cv2.VideoCapture(str(path))
            ok = cap.isOpened()
            cap.release()
            if not ok:
                raise ConfigError(f'video {path} cannot be opened')
        else:
            raise ConfigError(f'{path} is not a folder, image ({", ".join(IMAGE_SUFFIXES)}) or '
                              f'video ({", ".join(VIDEO_SUFFIXES)})')

    def stills(self, folder_is_sequence: bool) -> bool:
        """Whether each frame is a still photo of its own (a new sequence), not a stream.

        A folder's files are, unless it holds one sequence; one image file looped is the same
        photo again and a video is one sequence.
        """
        return self.kind == 'folder' and not folder_is_sequence

    def file_of(self, name: str) -> Path | None:
        """The image file a frame name came from (None for video frames)."""
        return next((f for f in self.files if f.stem == name), None)

    def __len__(self) -> int:
        if self.kind != 'video':
            return len(self.files)
        cap = cv2.VideoCapture(str(self.path))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        return max(n, 0)

    def frames(self, on_skip: Callable[[str, str], None]) -> Iterator[tuple[str, ColorImage]]:
        """Yield (name, image) of every readable frame, in order.

        An unreadable image file (empty, truncated, not an image) does not end the frames: it
        is handed to on_skip(file name, reason) and the next file follows.
        """
        if self.kind == 'video':
            cap = cv2.VideoCapture(str(self.path))
            index = 0
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    yield f'{self.path.stem}_{index:06d}', ColorImage(frame, 'bgr')
                    index += 1
            finally:
                cap.release()
            return
        for f in self.files:
            try:
                image = read_image_file(f)
            except InvalidImageError as exc:
                on_skip(f.name, str(exc))
                continue
            yield f.stem, image


def load_camera_info_file(path: str | Path, width: int, height: int) -> CameraIntrinsics:
    """Intrinsics from a ROS camera_info YAML or a KITTI calib file, scaled to width x height."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f'camera_info_file {p} does not exist')
    text = p.read_text(encoding='utf-8', errors='replace')
    if text.lstrip().startswith('P0:') or '\nP2:' in text:
        for line in text.splitlines():
            if line.startswith('P2:'):
                values = np.array([float(v) for v in line.split()[1:]])
                if values.size != 12:
                    raise InvalidCameraInfoError(f'{p}: P2 needs 12 values')
                k = values.reshape(3, 4)[:, :3]
                # KITTI calib has no image size; assume the image is the calibrated one.
                return CameraIntrinsics.from_k(k, width, height)
        raise InvalidCameraInfoError(f'{p}: no P2 line in the KITTI calib file')
    try:
        doc = yaml.safe_load(text) or {}
        k = doc['camera_matrix']['data']
        w, h = int(doc['image_width']), int(doc['image_height'])
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise InvalidCameraInfoError(
            f'{p}: not a ROS camera_info YAML (needs image_width, image_height and '
            f'camera_matrix.data): {exc}') from exc
    intrinsics = CameraIntrinsics.from_k(k, w, h)
    return intrinsics if (w, h) == (width, height) else intrinsics.scaled_to(width, height)



def calibration_path(url: str) -> Path:
    """The file of a camera_info_manager URL (file:///abs/path.yaml or a plain path).

    package:// URLs need a ROS package index, which this ROS-free core does not have: they are
    rejected with a clear error (give the file path instead).
    """
    parsed = urlparse(url)
    if parsed.scheme in ('', 'file'):
        path = Path(unquote(parsed.path if parsed.scheme else url)).expanduser()
        if parsed.scheme == 'file' and parsed.netloc not in ('', 'localhost'):
            raise ConfigError(f'camera_info_url {url!r}: only local file:// URLs are supported')
        return path
    raise ConfigError(f'camera_info_url {url!r}: unsupported scheme {parsed.scheme!r} '
                      f'(use file:///path/to/camera.yaml)')


class IntrinsicsResolver:
    """Intrinsics for each frame: calibration, else EXIF focal length, else an assumed FOV."""

    def __init__(self, config: ImageSourceConfig) -> None:
        self.config = config
        self.calibration = (calibration_path(config.camera_info_url) if config.camera_info_url
                            else Path(config.camera_info_file) if config.camera_info_file
                            else None)
        self._by_size: dict[tuple[int, int], CameraIntrinsics | None] = {}

    def kind(self, intrinsics: CameraIntrinsics | None) -> str:
        """'calibration', 'exif', 'assumed' or 'none': where the intrinsics came from."""
        if intrinsics is None:
            return 'none'
        if intrinsics.assumed:
            return 'assumed'
        return 'calibration' if self.calibration is not None else 'exif'

    def for_frame(self, width: int, height: int,
                  path: Path | None = None) -> CameraIntrinsics | None:
        """Intrinsics of one frame (`path`: its image file, for EXIF; None for video frames)."""
        if self.calibration is None and self.config.use_exif and path is not None:
            found = exif_intrinsics(path, width, height)
            if found is not None:
                return found
        key = (width, height)
        if key not in self._by_size:
            if self.calibration is not None:
                self._by_size[key] = load_camera_info_file(self.calibration, width, height)
            elif self.config.assumed_hfov_deg:
                self._by_size[key] = replace(CameraIntrinsics.from_horizontal_fov(
                    self.config.assumed_hfov_deg, width, height), assumed=True)
            else:
                self._by_size[key] = None
        return self._by_size[key]
