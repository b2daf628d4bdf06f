"""Hold a process to Lambda's CPU share for a memory size, with a cgroup v1 CPU quota.

Lambda allocates CPU in proportion to memory: 1,769 MB is one full vCPU, so a 512 MB
function gets about 29% of one core (AWS Lambda docs, "Memory and computing power").
``CpuShare.for_memory(name, 512)`` creates ``/sys/fs/cgroup/cpu/tokenrelay/<name>`` with
``cpu.cfs_period_us`` 100,000 and ``cpu.cfs_quota_us`` 28,943; ``enter()`` (in the child,
before exec: ``preexec_fn``) moves the calling process into it, so the environment's whole
life, cold start included, runs at that share. ``release()`` removes the cgroup.
``usage_s()`` is the CPU time the environment used, in nanoseconds' precision: from
``cpuacct.usage``, in the same cgroup where cpu and cpuacct are mounted together, or in a
twin cgroup under ``/sys/fs/cgroup/cpuacct`` where that is its own hierarchy (as here).

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
ACCT_ROOT = Path(os.environ.get("TOKENRELAY_CPUACCT_ROOT", "/sys/fs/cgroup/cpuacct")) / "tokenrelay"
FULL_VCPU_MB = 1769
PERIOD_US = 100_000


def quota_us(memory_mb: int, period_us: int = PERIOD_US) -> int:
    """The CFS quota of ``memory_mb``: the fraction of one vCPU Lambda gives it (at most 6 vCPUs)."""
    share = min(memory_mb / FULL_VCPU_MB, 6.0)
    return max(1000, round(period_us * share))  # the kernel's floor is 1 ms


def available() -> bool:
    parent = ROOT.parent
    return (parent / "cpu.cfs_quota_us").exists() and os.access(parent, os.W_OK)


def _acct_twin(name: str) -> Path | None:
    """A cpuacct cgroup for the environment where cpuacct is not mounted with cpu."""
    if (ROOT.parent / "cpuacct.usage").exists():
        return None  # cpu,cpuacct together: the cpu cgroup counts its own usage
    if not (ACCT_ROOT.parent / "cpuacct.usage").exists() or not os.access(ACCT_ROOT.parent, os.W_OK):
        return None
    path = ACCT_ROOT / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class CpuShare:
    path: Path
    memory_mb: int
    acct: Path | None = None  # the cpuacct twin (see the module's docstring)

    @classmethod
    def for_memory(cls, name: str, memory_mb: int) -> CpuShare | None:
        """A new cgroup for one environment; None where cgroup v1 is not writable."""
        if not available():
            return None
        unique = f"{name}-{uuid.uuid4().hex[:8]}"  # names repeat across stacks and runs
        path = ROOT / unique
        path.mkdir(parents=True, exist_ok=True)
        (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (path / "cpu.cfs_quota_us").write_text(str(quota_us(memory_mb)))
        return cls(path, memory_mb, _acct_twin(unique))

    def enter(self) -> None:
        """Move the calling process into the cgroup (its children follow it)."""
        self.add(os.getpid())

    def add(self, pid: int) -> None:
        for path in (self.path, self.acct):
            if path is not None:
                (path / "cgroup.procs").write_text(str(pid))

    def usage_s(self) -> float:
        """CPU time used by the cgroup's processes so far; 0.0 where no cpuacct controller is mounted."""
        for path in (self.path, self.acct):
            usage = path / "cpuacct.usage" if path is not None else None
            if usage is not None and usage.exists():
                return int(usage.read_text()) / 1e9
        return 0.0

    def release(self) -> None:
        """Remove the cgroups once their processes have exited (a cgroup with members cannot go)."""
        for path in (self.path, self.acct):
            try:
                if path is not None:
                    path.rmdir()
            except OSError:
                pass
