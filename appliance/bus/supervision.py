"""Worker processes: start them, notice when one dies and why, restart it, give up on a crash loop.

Each worker runs as ``python -X faulthandler -m parley.appliance.bus.worker_process``: a fresh
interpreter (never a fork of a process that holds threads and a ZeroMQ context), with
faulthandler on so a native crash in an inference engine leaves a traceback in the output tail
that the supervisor reports with the exit signal. Exits are noticed through a pidfd the router
polls beside its sockets, so a killed worker is seen at once, not at the next heartbeat.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

log = logging.getLogger("parley.bus.supervision")

OUTPUT_TAIL_LINES = 20


@dataclass(frozen=True)
class WorkerSpec:
    """A service to keep running: ``replicas`` processes of one Worker subclass."""

    service: str
    target: str
    """``package.module:WorkerClass``, importable by the worker's interpreter."""
    replicas: int = 1
    env: dict = field(default_factory=dict)
    """Added to the supervisor's environment for these processes (e.g. CUDA_VISIBLE_DEVICES)."""


class RestartPolicy:
    """When to restart a slot after its process exits, or that it is crash-looping (sans-I/O)."""

    def __init__(self, timing):
        self.timing = timing
        self.exits = deque()

    def exited(self, now):
        """The time to start again, or None: more than ``restart_limit`` exits within the window."""
        self.exits.append(now)
        while self.exits and self.exits[0] <= now - self.timing.restart_window:
            self.exits.popleft()
        if len(self.exits) > self.timing.restart_limit:
            return None
        return now + min(self.timing.restart_backoff * 2 ** (len(self.exits) - 1), self.timing.restart_backoff_max)


def describe_exit(returncode):
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


@dataclass(frozen=True)
class ProcessExit:
    """A supervised process ended."""

    name: str
    service: str
    pid: int
    reason: str
    output_tail: str
    restart_at: float | None
    """None when the slot gave up (crash loop) or the supervisor is stopping."""


class _OutputTail:
    """Reads a worker's stdout+stderr as it comes: logs each line, keeps the last few."""

    def __init__(self, name, stream):
        self.name = name
        self.lines = deque(maxlen=OUTPUT_TAIL_LINES)
        self._thread = threading.Thread(target=self._read, args=(stream,), name=f"output-{name}", daemon=True)
        self._thread.start()

    def _read(self, stream):
        with stream:
            for raw in stream:
                line = raw.decode(errors="replace").rstrip()
                self.lines.append(line)
                log.info("worker_output worker=%s line=%s", self.name, line)

    def text(self):
        self._thread.join(timeout=1.0)  # the pipe closes when the process has gone
        return "\n".join(self.lines)


class _Slot:
    def __init__(self, name, spec, timing):
        self.name = name
        self.spec = spec
        self.policy = RestartPolicy(timing)
        self.process = None
        self.pidfd = None
        self.output = None
        self.start_at = 0.0
        self.given_up = False


class Supervisor:
    """Keeps the configured worker processes running; the router drives it from its loop."""

    def __init__(self, endpoint, timing):
        self.endpoint = endpoint
        self.timing = timing
        self.slots: dict[str, _Slot] = {}
        self.restarts = 0
        self._stopping = False

    def add(self, spec):
        taken = sum(slot.spec.service == spec.service for slot in self.slots.values())
        for index in range(taken + 1, taken + spec.replicas + 1):
            name = f"{spec.service}-{index}"
            self.slots[name] = _Slot(name, spec, self.timing)

    def start_due(self, now):
        """Start every slot whose time has come; returns the pidfds to watch."""
        started = []
        for slot in self.slots.values():
            if slot.process is None and not slot.given_up and not self._stopping and now >= slot.start_at:
                self._spawn(slot)
                started.append(slot.pidfd)
        return started

    def _spawn(self, slot):
        command = [
            sys.executable, "-X", "faulthandler", "-m", "parley.appliance.bus.worker_process", slot.spec.target,
            "--endpoint", self.endpoint, "--name", slot.name,
            "--heartbeat-interval", repr(self.timing.heartbeat_interval), "--parent-pid", str(os.getpid()),
        ]
        env = {**os.environ, **slot.spec.env, "PYTHONUNBUFFERED": "1"}
        slot.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        slot.pidfd = os.pidfd_open(slot.process.pid)
        slot.output = _OutputTail(slot.name, slot.process.stdout)
        log.info("worker_started worker=%s service=%s pid=%d target=%s", slot.name, slot.spec.service, slot.process.pid, slot.spec.target)

    def running(self):
        """Slot name -> pid of every running process."""
        return {slot.name: slot.process.pid for slot in self.slots.values() if slot.process is not None}

    def watched(self):
        """pidfd -> slot name, for every running process."""
        return {slot.pidfd: slot.name for slot in self.slots.values() if slot.pidfd is not None}

    def reap(self, pidfd, now):
        """The process behind ``pidfd`` has exited: collect it, schedule a restart or give up."""
        slot = next(slot for slot in self.slots.values() if slot.pidfd == pidfd)
        process = slot.process
        returncode = process.wait()
        os.close(slot.pidfd)
        tail = slot.output.text()
        slot.process = slot.pidfd = slot.output = None
        reason = describe_exit(returncode)
        restart_at = None if self._stopping else slot.policy.exited(now)
        if restart_at is not None:
            slot.start_at = restart_at
            self.restarts += 1
            log.warning("worker_exited worker=%s pid=%d reason=%s restart_in=%.2fs output_tail=%r",
                        slot.name, process.pid, reason, restart_at - now, tail)
        elif not self._stopping:
            slot.given_up = True
            log.error("worker_crash_loop worker=%s pid=%d reason=%s exits=%d window=%gs action=not_restarting output_tail=%r",
                      slot.name, process.pid, reason, len(slot.policy.exits), self.timing.restart_window, tail)
        return ProcessExit(slot.name, slot.spec.service, process.pid, reason, tail, restart_at)

    def service_gave_up(self, service):
        slots = [slot for slot in self.slots.values() if slot.spec.service == service]
        return bool(slots) and all(slot.given_up for slot in slots)

    def kill(self, name, pid):
        """Kill a hung worker (it stopped heart-beating); its exit is then reaped and restarted."""
        slot = self.slots.get(name)
        if slot is not None and slot.process is not None and slot.process.pid == pid:
            log.warning("worker_kill worker=%s pid=%d reason=silent", name, pid)
            slot.process.kill()

    def next_timer(self):
        return min((slot.start_at for slot in self.slots.values()
                    if slot.process is None and not slot.given_up and not self._stopping), default=None)

    def stop(self, grace, told=()):
        """Stop every process: those named in ``told`` were sent ``shutdown``, the rest get SIGTERM;
        any still running after ``grace`` seconds is killed."""
        self._stopping = True
        deadline = time.monotonic() + grace
        for slot in self.slots.values():
            if slot.process is not None and slot.name not in told:
                slot.process.terminate()
        for slot in self.slots.values():
            if slot.process is None:
                continue
            try:
                slot.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker_kill worker=%s pid=%d reason=no exit within %gs of shutdown", slot.name, slot.process.pid, grace)
                slot.process.kill()
                slot.process.wait()
            os.close(slot.pidfd)
            slot.output.text()
            slot.process = slot.pidfd = slot.output = None
