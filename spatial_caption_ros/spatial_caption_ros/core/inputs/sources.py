"""Frames from a folder of images, one image file or a video file; camera calibration files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import yaml

from spatial_caption_ros.core.errors import ConfigError, InvalidCameraInfoError, InvalidImageError
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
            'a KITTI calib file (P2). Empty: see assumed_hfov_deg.', when=CONFIGURE)
    assumed_hfov_deg: float = param(
        0.0, 'Without a calibration file, publish CameraInfo of an ideal camera with this '
             'horizontal field of view (an assumption, logged as such); 0: publish no '
             'CameraInfo.', minimum=0.0, maximum=179.0, when=CONFIGURE)
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

    def validate(self) -> None:
        if self.camera_info_file and self.assumed_hfov_deg:
            raise ConfigError('give camera_info_file or assumed_hfov_deg, not both')


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

