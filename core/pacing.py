"""Paced sending: one tick's packets leave at their deadline, whatever the Python threads do.

``send_at(deadline_ns, batch)`` sleeps until ``deadline_ns`` on ``time.monotonic_ns()``'s clock
and sends every ``(socket, packet, sockaddr(host, port), (host, port))`` in ``batch``; it returns
how late each packet left in ns (None for one the socket refused). ``Pacer`` is a thread of its
own doing it batch after batch: ``submit(deadline_ns, batch, owners)`` queues one,
``drain()`` gives back ``(deadline_ns, submitted_ns, woke_ns, [(owner, late_ns), ...])`` for
each one sent (``woke_ns``: when its sleep ended; later than the deadline, the machine kept the
thread off the CPU). The compiled
``_pacing`` sleeps and sends with the GIL released, and its Pacer's thread never takes the GIL;
``PARLEY_NO_EXTENSIONS=1`` runs the twin ``_pacing_py``.
"""

import socket
import struct

from parley.core._implementation import choose

_impl, COMPILED = choose("_pacing", "_pacing_py")

send_at = _impl.send_at
Pacer = _impl.Pacer


def sockaddr(host, port):
    """The ``struct sockaddr_in`` (or ``sockaddr_in6``) bytes of ``(host, port)`` for ``sendto(2)``."""
    if ":" in host:
        return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0)
                + socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", 0))
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(host) + bytes(8)
