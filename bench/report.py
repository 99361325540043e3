"""Machine facts, the stdout table and the JSON files in bench/results/."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.stats import Figure

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=RESULTS_DIR.parent, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def machine_facts() -> dict[str, Any]:
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "temporalio": version("temporalio"),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": None if status is None else bool(status),
    }


def _format_value(value: float | int | str) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def table(figures: list[Figure]) -> str:
    rows = [("section", "metric", "value", "unit", "vs floor", "note")]
    rows += [
        (
            f.section,
            f.metric,
            _format_value(f.value),
            f.unit,
            "" if f.vs_floor is None else f"×{f.vs_floor:.2f}",
            f.note,
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    right = {2, 4}  # numbers right-aligned

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    return value


def write_json(
    started_at: datetime,
    duration_s: float,
    figures: list[Figure],
    meta: dict[str, Any],
    *,
    latest: bool = True,
) -> tuple[Path, Path | None]:
    """bench/results/<UTC>.json, and latest.json too with `latest` (a whole run)."""
    document = {
        "started_at": started_at.isoformat().replace("+00:00", "Z"),
        "duration_s": round(duration_s, 1),
        **meta,
        "figures": [
            {key: _json_safe(value) for key, value in dataclasses.asdict(f).items()} for f in figures
        ],
    }
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamped = RESULTS_DIR / f"{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    stamped.write_text(text)
    if not latest:
        return stamped, None
    latest_file = RESULTS_DIR / "latest.json"
    latest_file.write_text(text)
    return stamped, latest_file


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
