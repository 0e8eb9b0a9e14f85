"""`python -m images [--only base|node|chart]`: build (or load from the cache) every image the kind
backend needs, one progress line per step. PRIMEHUB_IMAGES=pull pulls the official images instead."""

from __future__ import annotations

import argparse
import os
import sys
import time

from localstack import dockerd
from localstack.common import StackError, step

from . import build, node


def main() -> int:
    ap = argparse.ArgumentParser(prog="images")
    ap.add_argument("--only", choices=["base", "node", "chart"], action="append")
    a = ap.parse_args()
    parts = a.only or ["base", "node", "chart"]
    t0 = time.monotonic()
    try:
        os.environ["DOCKER_HOST"] = dockerd.ensure()
        if os.environ.get("PRIMEHUB_IMAGES", "build") == "pull":
            build.pull()
        else:
            build.base()
            if "node" in parts:
                node.node()
            if "chart" in parts:
                build.chart()
    except StackError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    step(f"images ready in {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
