"""Paced sending: one tick's packets leave at their deadline, whatever the Python threads do.

``Pacer(max_packets)`` is a sending thread: ``submit(deadline_ns, batch, owners)`` queues a batch
of ``(socket, packet, sockaddr(host, port), (host, port))`` to leave at ``deadline_ns`` on
``time.monotonic_ns()``'s clock; ``drain()`` gives back ``(deadline_ns, submitted_ns, woke_ns,
[(owner, late_ns), ...])`` for each batch sent (``late_ns`` None for a packet the socket
refused; ``woke_ns`` when the thread's sleep ended: later than the deadline, the machine kept
it off the CPU). The compiled ``_pacing`` thread never takes the GIL; ``PARLEY_NO_EXTENSIONS=1``
runs the twin ``_pacing_py``.
"""

import socket
import struct

from parley.core._implementation import choose

_impl, COMPILED = choose("_pacing", "_pacing_py")

Pacer = _impl.Pacer


def sockaddr(host, port):
    """The ``struct sockaddr_in`` (or ``sockaddr_in6``) bytes of ``(host, port)`` for ``sendto(2)``."""
    if ":" in host:
        return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0)
                + socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", 0))
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(host) + bytes(8)
