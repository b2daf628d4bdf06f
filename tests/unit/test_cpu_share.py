"""scripts/devstack/cpu_share.py holds a process to Lambda's CPU share for its memory size.

Lambda gives a function memory/1,769 MB of one vCPU. A busy loop in a 128 MB environment
must get at most about 7% of a core however idle the machine is; where cgroup v1 is not
writable (not root, cgroup v2) the module says so and nothing is held.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from scripts.devstack import cpu_share

BUSY = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: pass\n"


def test_quota_is_memory_over_one_vcpu_with_the_kernel_floor() -> None:
    assert cpu_share.quota_us(1769) == 100_000  # one full vCPU
    assert cpu_share.quota_us(512) == 28_943  # the module's documented example
    assert cpu_share.quota_us(10_240) == 578_858  # 10 GB: about 5.79 vCPUs
    assert cpu_share.quota_us(8) == 1000  # never under the kernel's 1 ms


@pytest.mark.skipif(not cpu_share.available(), reason="needs root and cgroup v1's cpu controller")
def test_a_busy_process_gets_no_more_than_its_share() -> None:
    share = cpu_share.CpuShare.for_memory("test-busy", 128)
    assert share is not None
    wall_s = 1.5
    try:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", BUSY.format(s=wall_s)], preexec_fn=share.enter, check=True, timeout=30
        )
        elapsed = time.monotonic() - started
        used = share.usage_s()
    finally:
        share.release()
    assert proc.returncode == 0
    allowed = elapsed * cpu_share.quota_us(128) / cpu_share.PERIOD_US  # about 7.2% of the wall time
    if used == 0.0:
        pytest.skip("no cpuacct controller to read the usage from")
    # A free-running loop would use about elapsed seconds; held, it gets its share (plus one
    # period of slack for the interpreter's start before the first throttle).
    assert used <= allowed + 0.1, (used, allowed, elapsed)
    assert used > 0.0
    assert not share.path.exists()
