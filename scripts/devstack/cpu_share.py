"""Hold a process to Lambda's CPU share for a memory size, with a cgroup v1 CPU quota.

Lambda allocates CPU in proportion to memory: 1,769 MB is one full vCPU, so a 512 MB
function gets about 29% of one core (AWS Lambda docs, "Memory and computing power").
``CpuShare.for_memory(name, 512)`` creates ``/sys/fs/cgroup/cpu/tokenrelay/<name>`` with
``cpu.cfs_period_us`` 100,000 and ``cpu.cfs_quota_us`` 28,943; ``enter()`` (in the child,
before exec: ``preexec_fn``) moves the calling process into it, so the environment's whole
life, cold start included, runs at that share. ``release()`` removes the cgroup.

Needs root and cgroup v1's cpu controller (these machines have both); ``available()``
says whether it can work here, and the environments run unrestricted where it cannot.
Issue 19's cold-start benchmarks use the same module.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(os.environ.get("TOKENRELAY_CGROUP_ROOT", "/sys/fs/cgroup/cpu")) / "tokenrelay"
FULL_VCPU_MB = 1769
PERIOD_US = 100_000


def quota_us(memory_mb: int, period_us: int = PERIOD_US) -> int:
    """The CFS quota of ``memory_mb``: the fraction of one vCPU Lambda gives it (at most 6 vCPUs)."""
    share = min(memory_mb / FULL_VCPU_MB, 6.0)
    return max(1000, round(period_us * share))  # the kernel's floor is 1 ms


def available() -> bool:
    parent = ROOT.parent
    return (parent / "cpu.cfs_quota_us").exists() and os.access(parent, os.W_OK)


@dataclass
class CpuShare:
    path: Path
    memory_mb: int

    @classmethod
    def for_memory(cls, name: str, memory_mb: int) -> CpuShare | None:
        """A new cgroup for one environment; None where cgroup v1 is not writable."""
        if not available():
            return None
        path = ROOT / f"{name}-{uuid.uuid4().hex[:8]}"  # names repeat across stacks and runs
        path.mkdir(parents=True, exist_ok=True)
        (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (path / "cpu.cfs_quota_us").write_text(str(quota_us(memory_mb)))
        return cls(path, memory_mb)

    def enter(self) -> None:
        """Move the calling process into the cgroup (its children follow it)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def usage_s(self) -> float:
        """CPU time used by the cgroup's processes so far (``cpuacct.usage`` where mounted with cpu)."""
        usage = self.path / "cpuacct.usage"
        return int(usage.read_text()) / 1e9 if usage.exists() else 0.0

    def release(self) -> None:
        """Remove the cgroup once its processes have exited (a cgroup with members cannot go)."""
        try:
            self.path.rmdir()
        except OSError:
            pass
