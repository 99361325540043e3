"""CPU time of process trees from /proc (Linux), to see which process a section saturates."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench.stats import Figure

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read_stats() -> dict[int, tuple[int, float, float]]:
    """pid → (ppid, own cpu seconds, cpu seconds of its reaped children)."""
    stats: dict[int, tuple[int, float, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
        ppid, utime, stime, cutime, cstime = int(fields[1]), *map(int, fields[11:15])
        stats[int(entry.name)] = (ppid, (utime + stime) / _TICKS, (cutime + cstime) / _TICKS)
    return stats


def _tree_seconds(root: int, stats: dict[int, tuple[int, float, float]]) -> float:
    """CPU seconds of `root` and every descendant, live or reaped (e.g. PostgreSQL backends)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            _, own, reaped = stats[pid]
            total += own + reaped
            todo.extend(children.get(pid, []))
    return total


@dataclass
class CpuMeter:
    """Cores used by named processes between start() and stop(): each one's whole process
    tree, except this process, which counts alone (the servers it measures are its children)."""

    pids: dict[str, int]
    _start: dict[str, float] | None = None
    _started_at: float = 0.0

    @staticmethod
    def available() -> bool:
        return Path("/proc/self/stat").exists()

    def _sample(self) -> dict[str, float]:
        stats = _read_stats()
        return {
            name: stats.get(pid, (0, 0.0, 0.0))[1] if pid == os.getpid() else _tree_seconds(pid, stats)
            for name, pid in self.pids.items()
        }

    def start(self) -> None:
        if self.available():
            self._start, self._started_at = self._sample(), time.monotonic()

    def stop(self) -> dict[str, float]:
        """name → average cores used (1.0 = one core busy the whole time)."""
        if self._start is None:
            return {}
        end, elapsed = self._sample(), time.monotonic() - self._started_at
        return {name: (end[name] - self._start[name]) / elapsed for name in self._start if name in end}


def cpu_figures(section: str, cores: dict[str, float], per_s: float, item: str) -> list[Figure]:
    """Cores each process used, and so its CPU time per workflow, order or request."""
    figures = [
        Figure(section, f"cpu: {name}", used, "cores", note=f"{used / per_s * 1000:.1f} ms per {item}")
        for name, used in cores.items()
    ]
    total = sum(cores.values())
    return [
        *figures,
        Figure(
            section, "cpu: all measured", total, "cores", note=f"{total / per_s * 1000:.1f} ms per {item}"
        ),
    ]
