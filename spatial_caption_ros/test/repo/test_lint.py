"""Lint is part of the test suite: ruff with the repository ruff.toml (line length 99)."""

from pathlib import Path
import subprocess
import sys

from support import REPO


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name('ruff')
    proc = subprocess.run([str(ruff), 'check', '--output-format', 'concise',
                           'spatial_caption_ros'],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
