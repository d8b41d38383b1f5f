"""Saving a benchmark's figures to its results file: the whole JSON or nothing, so an
interrupted run never leaves a half-written file where the last good one was. What the
figures are is each benchmark's business."""

from __future__ import annotations

import json
import os
from pathlib import Path


def save_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)
