"""The machine-stall watchers the SIP load test measures itself against (tests/machine_stalls.py)."""

import os
import subprocess
import sys

import pytest

from machine_stalls import WATCH_PRIORITY, MachineStalls

HOG = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(sys.argv[2])))
start = time.monotonic()
while time.monotonic() - start < 0.03:
    pass
print(start, time.monotonic())
"""


def realtime_allowed():
    try:
        subprocess.run([sys.executable, "-c", "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"],
                       check=True, capture_output=True)
    except subprocess.CalledProcessError:
        return False
    return True


def test_windows_overlapping_a_span_are_found():
    stalls = MachineStalls()
    stalls.windows = [(1.0, 1.01), (2.0, 2.05)]
    assert stalls.covering(0.5, 0.99) == []
    assert stalls.covering(1.005, 1.5) == [(1.0, 1.01)]
    assert stalls.covering(0.0, 3.0) == [(1.0, 1.01), (2.0, 2.05)]


@pytest.mark.skipif(not realtime_allowed(), reason="real-time scheduling needs root or CAP_SYS_NICE")
def test_a_cpu_taken_away_for_30_ms_is_one_window():
    """A process above the watchers' priority, spinning 30 ms on one CPU, takes that CPU from
    everything of ours: the watcher pinned there reports it."""
    cpu = min(os.sched_getaffinity(0))
    with MachineStalls() as stalls:
        hog = subprocess.run([sys.executable, "-c", HOG, str(cpu), str(WATCH_PRIORITY + 1)], check=True,
                             capture_output=True, text=True)
    start, end = map(float, hog.stdout.split())
    assert stalls.realtime
    [window] = [w for w in stalls.covering(start, end) if w[1] - w[0] > 0.02]
    assert window[0] <= start + 0.005 and window[1] >= end - 0.005
