"""Small statistics and record helpers shared by the cases."""

from __future__ import annotations

import math
from collections import Counter


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": round(min(values), 3),
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "max": round(max(values), 3),
        "mean": round(sum(values) / len(values), 3),
    }


def calls_of(record: dict, kind: str) -> int:
    """Calls of one kind ('keycloak', 'k8s', 'k8s-watch', 'proxy', 'http') charged to a record."""
    return sum(n for key, n in (record.get("calls") or {}).items() if key.split(" ", 1)[0] == kind)


def merged_calls(records: list[dict]) -> dict:
    total: Counter = Counter()
    for r in records:
        total.update(r.get("calls") or {})
    return dict(sorted(total.items()))


def our_window(record: dict) -> float | None:
    """ms from the spawner's start() to KubeSpawner's pod creation request: our pre-spawn work."""
    marks = record.get("marks") or {}
    if "start" in marks and "pod_create" in marks:
        return marks["pod_create"] - marks["start"]
    return None
