"""The peak memory of a process and every process it started, together (Linux ``/proc``).

``resource.getrusage`` and ``/usr/bin/time`` report the largest single process; a run whose
stages go to worker processes holds its data in each of them, so the figure that matters is
the sum over the tree at its highest. :class:`TreePeak` samples that sum in a thread.

    with TreePeak() as peak:
        ...
    print(peak.mib)
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants now, in KiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _rss_kib(p)
        todo += _children(p)
    return total


class TreePeak:
    """The highest resident memory of this process's tree (or ``pid``'s) while the block runs."""

    def __init__(self, pid: int | None = None, every: float = 0.25) -> None:
        self.pid, self.every = pid or os.getpid(), every
        self.kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.kib = max(self.kib, tree_rss_kib(self.pid))
            self._stop.wait(self.every)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        return self.kib / 1024
