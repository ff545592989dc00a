"""The HTML report rendered by headless Chromium: the timeline and the keyframes are on screen.

Chromium comes from Debian (chromium + chromium-driver), installed by scripts/chromium.sh when
missing; the test is skipped, with the reason, only when that install is impossible here.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from spatial_caption_ros.cli.bag import main
from spatial_caption_ros.core.visualization.report import TIMELINE_COLOR
from support import needs_shared, REPO

WIDTH, HEIGHT = 1280, 2400
# The page without images has a few hundred colours (text, plots); photos have many thousands.
PHOTO_COLOURS = 5000

pytestmark = needs_shared


@pytest.fixture(scope='module')
def chromium() -> str:
    path = shutil.which('chromium')
    if path:
        return path
    done = subprocess.run([str(REPO / 'scripts' / 'chromium.sh')], capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        pytest.skip(f'headless Chromium could not be installed: {done.stderr.strip()}')
    return done.stdout.strip().splitlines()[-1]


def screenshot(chromium: str, html, tmp_path) -> np.ndarray:
    """The page as Chromium draws it, offline (no network access is possible or needed)."""
    png = tmp_path / f'{html.stem}.png'
    subprocess.run(
        [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
         '--no-first-run', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', f'--user-data-dir={tmp_path / "profile"}', '--hide-scrollbars',
         f'--window-size={WIDTH},{HEIGHT}', f'--screenshot={png}', html.as_uri()],
        check=True, capture_output=True, timeout=120)
    image = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (HEIGHT, WIDTH)
    return image


def timeline_pixels(image: np.ndarray) -> int:
    r, g, b = (int(TIMELINE_COLOR[i:i + 2], 16) for i in (1, 3, 5))
    return int(np.count_nonzero(np.all(np.abs(image.astype(int) - (b, g, r)) <= 2, axis=2)))


def colours(image: np.ndarray) -> int:
    return len(np.unique(image.reshape(-1, 3), axis=0))


def test_report_shows_the_caption_timeline_and_annotated_keyframes(
        tum_recordings, tmp_path, chromium):
    out = tmp_path / 'out'
    assert main([str(tum_recordings['mcap']), '--output', str(out), '--set',
                 'caption.generator=template', '--quiet']) == 0
    html = out / 'report.html'
    text = html.read_text()
    # self-contained: no resource is fetched when the report is viewed
    assert not re.search(r'(src|href)="(https?:)?//', text) and '<script' not in text
    assert text.count('data:image/jpeg;base64,') == 3
    for section in ('id="timeline"', 'id="keyframes"', 'id="objects"', 'id="depth-source"',
                    'id="latency"', 'Run parameters'):
        assert section in text
    image = screenshot(chromium, html, tmp_path)
    # the timeline is drawn (its bands and ticks in the timeline colour)...
    assert timeline_pixels(image) > 2000
    top = image[:HEIGHT // 2]
    # ...and the keyframe photos are on screen (thousands of distinct colours)
    assert colours(top) > PHOTO_COLOURS
    # control: the same report without its keyframes shows the timeline but no photo
    bare = tmp_path / 'bare.html'
    bare.write_text(re.sub(r'<div class="grid" id="keyframes">.*?</div>', '', text,
                           flags=re.S))
    control = screenshot(chromium, bare, tmp_path)
    assert timeline_pixels(control) > 2000 and colours(control[:HEIGHT // 2]) < PHOTO_COLOURS
