"""The plain-Python twin of ``_pacing``: a Python thread sleeps, then ``sock.sendto`` each
packet (it needs the GIL throughout, so other threads can delay them)."""

import os
import threading
import time
from collections import deque

ADDRESS_BYTES = 128
"""Room for any ``struct sockaddr`` (that of ``sockaddr_storage``), as in the compiled pacer."""


def _send_at(deadline_ns, batch):
    """Sleep until ``deadline_ns`` (monotonic), then send each ``(socket, packet, sockaddr,
    address)`` of ``batch``; when the sleep ended, and how late each packet left in ns (None: not
    sent)."""
    delay = (deadline_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)
    woke = time.monotonic_ns()
    late = []
    for sock, packet, _, address in batch:
        try:
            sock.sendto(packet, address)
        except OSError:
            late.append(None)
            continue
        late.append(time.monotonic_ns() - deadline_ns)
    return woke, late


class Pacer:
    """A sending thread: ``submit`` a batch for a deadline, ``drain`` how late each packet left
    (the compiled one's thread never takes the GIL; this one's needs it for every packet)."""

    def __init__(self, max_packets, max_bytes=1500, slots=8, priority=0):
        if max_packets < 1 or max_bytes < 1 or slots < 2:
            raise ValueError(f"a pacer needs room for 1 packet or more of 1 byte or more in 2 slots or more, "
                             f"not {max_packets} packets of {max_bytes} bytes in {slots}")
        self.slots, self.max_packets, self.max_bytes, self._priority = slots, max_packets, max_bytes, priority
        self.realtime = False
        self._queued = deque()
        self._sent = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = None

    def start(self):
        if self._thread is not None:
            raise RuntimeError("the pacer is already started")
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="pacer", daemon=True)
        self._thread.start()
        started.wait()
        return self

    def submit(self, deadline_ns, batch, owners):
        if len(batch) > self.max_packets or len(owners) != len(batch):
            raise ValueError(f"a batch of {len(batch)} packets with {len(owners)} owners; "
                             f"at most {self.max_packets}, one each")
        for _, packet, address, _ in batch:
            if len(packet) > self.max_bytes or len(address) > ADDRESS_BYTES:
                raise ValueError(f"a packet of {len(packet)} bytes (at most {self.max_bytes}) or an "
                                 f"address of {len(address)} (at most {ADDRESS_BYTES})")
        with self._wake:
            if len(self._queued) + len(self._sent) >= self.slots:
                return False
            self._queued.append((deadline_ns, time.monotonic_ns(), list(batch), list(owners)))
            self._wake.notify()
        return True

    def drain(self):
        with self._wake:
            done, self._sent = list(self._sent), deque()
        return done

    def stop(self):
        if self._thread is not None:
            with self._wake:
                self._stopping = True
                self._wake.notify()
            self._thread.join()

    def _run(self, started):
        if self._priority > 0:
            try:
                os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(self._priority))
                self.realtime = True
            except OSError:
                pass
        started.set()
        while True:
            with self._wake:
                while not self._queued and not self._stopping:
                    self._wake.wait()
                if not self._queued:
                    return
                deadline_ns, submitted_ns, batch, owners = self._queued[0]
            woke_ns, late = _send_at(deadline_ns, batch)
            with self._wake:
                self._queued.popleft()
                self._sent.append((deadline_ns, submitted_ns, woke_ns, list(zip(owners, late))))
