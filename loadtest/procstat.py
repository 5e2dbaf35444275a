"""CPU accounting from /proc: utime+stime of chosen processes and the whole machine."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    text = (PROC / str(pid) / "stat").read_text()
    return text.rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds; 0 if it is gone."""
    try:
        f = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # After the ')' split: f[0] is field 3 (state), so utime (14) and stime (15) are f[11], f[12].
    return (int(f[11]) + int(f[12])) / CLK_TCK


def descendants(pids: Iterable[int]) -> set[int]:
    """The given pids plus every live descendant (services may fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    seen: set[int] = set()
    todo = [p for p in pids if (PROC / str(p)).exists()]
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(children.get(p, ()))
    return seen


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds per named group of processes, plus machine-wide busy seconds."""

    groups: dict[str, float]
    machine_busy: float

    @classmethod
    def take(cls, groups: Mapping[str, Iterable[int]]) -> CpuSnapshot:
        return cls(
            groups={
                name: sum(process_cpu_seconds(p) for p in descendants(pids))
                for name, pids in groups.items()
            },
            machine_busy=machine_busy_seconds(),
        )

    def minus(self, before: CpuSnapshot) -> CpuSnapshot:
        return CpuSnapshot(
            groups={k: v - before.groups.get(k, 0.0) for k, v in self.groups.items()},
            machine_busy=self.machine_busy - before.machine_busy,
        )


def machine_busy_seconds() -> float:
    """All CPUs' non-idle time since boot (first line of /proc/stat, idle+iowait excluded)."""
    fields = [int(x) for x in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice; guest* already in user.
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / CLK_TCK
