"""The plain-Python twin of ``_pacing``: sleep, then ``sock.sendto`` each packet (the GIL is
taken back between sends, so other threads can delay them)."""

import time


def send_at(deadline_ns, batch):
    """Sleep until ``deadline_ns`` (monotonic), then send each ``(socket, packet, sockaddr,
    address)`` of ``batch``; a list of how late each packet left, in ns (None: not sent)."""
    delay = (deadline_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)
    late = []
    for sock, packet, _, address in batch:
        try:
            sock.sendto(packet, address)
        except OSError:
            late.append(None)
            continue
        late.append(time.monotonic_ns() - deadline_ns)
    return late
