"""Write the graph's parameter file (config/pipeline.yaml) from the declared parameters.

`spatial-caption-config > config/pipeline.yaml` regenerates the shipped file with every parameter,
its default and its description as a comment; a test checks the shipped file matches. The
parameter-file library itself (load, dump, --set) is spatial_caption_ros/params_file.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from spatial_caption_ros.params_file import render_yaml


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--output', help='write to this file instead of stdout')
    args = parser.parse_args(argv)
    text = render_yaml()
    if args.output:
        Path(args.output).write_text(text, encoding='utf-8')
    else:
        sys.stdout.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
