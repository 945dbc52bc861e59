"""Resumable stages: each stage's result is stored under a key made from its settings.

A stage is skipped when its record exists with the same key; changing a setting changes
the key of that stage and of every stage that depends on it (their keys include their
inputs' keys), so only those are recomputed. Records are written atomically, after the
files they describe, so a run killed at any moment leaves only whole, finished stages.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from obfaudit._io import to_jsonable, write_json
from obfaudit._version import __version__


def stage_key(settings: dict) -> str:
    """A short hash of a stage's settings (including its inputs' keys)."""
    blob = json.dumps(to_jsonable(settings), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class StageCache:
    """Stage records under ``run_dir/stages/NAME.json``."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir) / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def path(self, name: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"bad stage name {name!r}")
        return self.dir / f"{name}.json"

    def load(self, name: str, key: str) -> dict | None:
        """The stored record of ``name`` if it was made with ``key``, else None."""
        path = self.path(name)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None  # a damaged record is recomputed, never trusted
        return record if record.get("key") == key else None

    def run(
        self,
        name: str,
        settings: dict,
        compute: Callable[[], dict],
        *,
        valid: Callable[[dict], bool] | None = None,
    ) -> dict:
        """The stage's record: stored when its key matches (and ``valid`` agrees), else computed."""
        key = stage_key({**settings, "obfaudit": __version__})
        record = self.load(name, key)
        if record is not None and (valid is None or valid(record)):
            self.skipped.append(name)
            return record
        t0 = time.perf_counter()
        result = compute()
        record = {
            "stage": name,
            "key": key,
            "settings": to_jsonable(settings),
            "seconds": round(time.perf_counter() - t0, 3),
            "result": to_jsonable(result),
        }
        write_json(self.path(name), record)
        self.ran.append(name)
        return record


def read_records(run_dir: str | Path) -> dict[str, dict]:
    """Every stage record of a run directory, by stage name."""
    out: dict[str, dict] = {}
    for path in sorted((Path(run_dir) / "stages").glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
    return out


Settings = dict[str, Any]
