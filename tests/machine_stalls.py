"""When the machine itself stopped running programs: a cyclictest-style watch, one process per CPU.

A timing test on a shared virtual machine meets stalls no program can prevent: the host runs
something else on our virtual CPU ("steal"), or the kernel is busy. To tell those from lateness
of the program under test, each watcher is pinned to one CPU at real-time priority (SCHED_FIFO
50, above the appliance's media threads) and sleeps 1 ms at a time; a wake-up more than
``STALL_MS`` after the one before is a window in which that CPU ran nothing of ours. Seen here:
up to 40 ms on an otherwise idle 2-CPU machine after a program had used and freed 16 GB.

Without real-time scheduling (no root, no CAP_SYS_NICE) a watcher's delays could be any busy
process's doing, so no windows are reported and a test stays strict.

    with MachineStalls() as stalls:
        ...                      # the timed run
    stalls.windows               # [(start_s, end_s), ...] on time.monotonic()'s clock
    stalls.realtime              # whether the windows were measured

Run as a script it is one watcher: ``python machine_stalls.py CPU``; it prints its windows as
one JSON line when its standard input closes.
"""

import json
import os
import select
import subprocess
import sys
import time

STALL_MS = 5.0
"""A CPU that ran none of our programs for longer than this stalled: a wake-up this much later
than the one before (1 ms sleeps) is one; the SIP load test's own bound for a late packet, so a
shorter hiccup (seen here: many of 2-4 ms under loopback network load) excuses nothing."""
WATCH_PRIORITY = 50


class MachineStalls:
    """A context manager: one watcher process per CPU this process may run on."""

    def __init__(self):
        self.windows = []
        self.realtime = False
        self._watchers = []

    def __enter__(self):
        for cpu in sorted(os.sched_getaffinity(0)):
            self._watchers.append(subprocess.Popen([sys.executable, __file__, str(cpu)], stdin=subprocess.PIPE,
                                                   stdout=subprocess.PIPE, text=True))
        for watcher in self._watchers:
            if watcher.stdout.readline().strip() != "WATCHING":
                raise RuntimeError("a machine-stall watcher did not start")
        return self

    def __exit__(self, *exc):
        reports = []
        for watcher in self._watchers:
            out, _ = watcher.communicate(timeout=10)
            reports.append(json.loads(out.strip().splitlines()[-1]))
        self.realtime = bool(reports) and all(report["realtime"] for report in reports)
        if self.realtime:
            self.windows = sorted(tuple(window) for report in reports for window in report["windows"])

    def covering(self, start_s, end_s):
        """The stall windows that overlap ``[start_s, end_s]``."""
        return [(a, b) for a, b in self.windows if a <= end_s and b >= start_s]


def watch(cpu):
    """Watch ``cpu`` until standard input closes; print ``{"realtime", "windows"}``."""
    os.sched_setaffinity(0, {cpu})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(WATCH_PRIORITY))
        realtime = True
    except OSError:
        realtime = False
    print("WATCHING", flush=True)
    windows = []
    before = time.monotonic_ns()
    while not select.select([sys.stdin], [], [], 0.001)[0]:
        now = time.monotonic_ns()
        if (now - before) / 1e6 > STALL_MS:
            windows.append((before / 1e9, now / 1e9))
        before = now
    print(json.dumps({"cpu": cpu, "realtime": realtime, "windows": windows}), flush=True)


if __name__ == "__main__":
    watch(int(sys.argv[1]))
