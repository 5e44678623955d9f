"""CPU time and peak memory of other processes, read from /proc (Linux).

The end-to-end stage runs every service, sandbox and nats-server as its own
process, as `waybill up` does; what each costs is read from the kernel's
accounting of that process, so the harness's own work is never counted.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU the process has used so far (its threads included)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / _TICKS_PER_S


def peak_rss_mib(pid: int) -> float:
    """The most resident memory the process has had (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    """``cpu_seconds`` of every named process."""
    return {name: cpu_seconds(pid) for name, pid in pids.items()}
