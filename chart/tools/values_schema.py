#!/usr/bin/env python3
"""chart/values.schema.json, generated from chart/values.schema.yaml.

Helm reads only the JSON; people write the YAML (comments, no brace-counting, long descriptions
as block text). The JSON is generated and committed, and a unit test and `make lint` fail when
it is stale.

    python chart/tools/values_schema.py           # rewrite values.schema.json from the YAML
    python chart/tools/values_schema.py --check   # exit 1 if values.schema.json is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[1]
SOURCE = CHART / "values.schema.yaml"
TARGET = CHART / "values.schema.json"


def render(source: Path = SOURCE) -> str:
    schema = yaml.safe_load(source.read_text(encoding="utf-8"))
    if not isinstance(schema, dict) or "$schema" not in schema:
        raise SystemExit(f"{source}: not a JSON schema (no top-level $schema)")
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when values.schema.json is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET.name} is stale: run python chart/tools/values_schema.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
