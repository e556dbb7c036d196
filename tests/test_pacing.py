"""Paced sending: packets leave no earlier than their deadline and soon after it, in order, in
both the compiled pacer (its thread never takes the GIL) and its Python twin."""

import importlib
import random
import socket
import time

import pytest

from parley.core import pacing

IMPLEMENTATIONS = [pytest.param(importlib.import_module("parley.core._pacing"), id="compiled"),
                   pytest.param(importlib.import_module("parley.core._pacing_py"), id="twin")]


@pytest.fixture
def receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    yield sock
    sock.close()


def test_sockaddr_is_the_kernel_layout():
    address = pacing.sockaddr("127.0.0.1", 5004)
    assert len(address) == 16 and address[2:4] == (5004).to_bytes(2, "big") and address[4:8] == bytes([127, 0, 0, 1])
    assert len(pacing.sockaddr("::1", 5004)) == 28


@pytest.fixture
def sender():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        yield sock


def packets(sock, target, *names):
    return [(sock, name.encode(), pacing.sockaddr(*target), target) for name in names]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_pacer_sends_batch_after_batch_at_their_deadlines(impl, receiver, sender):
    target = receiver.getsockname()
    pacer = impl.Pacer(4).start()
    try:
        first = time.monotonic_ns() + 20_000_000
        deadlines = [first + k * 20_000_000 for k in range(3)]
        for k, deadline in enumerate(deadlines):
            assert pacer.submit(deadline, packets(sender, target, f"{k}a", f"{k}b"), [f"call {k}a", f"call {k}b"])
        assert [receiver.recv(10) for _ in range(6)] == [b"0a", b"0b", b"1a", b"1b", b"2a", b"2b"]
        assert time.monotonic_ns() >= deadlines[-1]
        time.sleep(0.01)
        sent = pacer.drain()
    finally:
        pacer.stop()
    assert [deadline for deadline, *_ in sent] == deadlines
    assert [[owner for owner, _ in results] for *_, results in sent] == [
        [f"call {k}a", f"call {k}b"] for k in range(3)]
    assert all(0 <= late < 20_000_000 for *_, results in sent for _, late in results)
    assert all(submitted < deadline <= woke <= deadline + min(late for _, late in results)
               for deadline, submitted, woke, results in sent), "submitted, then woken at the deadline, then sent"
    assert pacer.drain() == [], "each batch is read back once"


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_full_pacer_refuses_a_batch_whole_and_stop_sends_what_it_holds(impl, receiver, sender):
    target = receiver.getsockname()
    pacer = impl.Pacer(2, slots=2).start()
    soon = time.monotonic_ns() + 50_000_000
    assert pacer.submit(soon, packets(sender, target, "a"), [1])
    assert pacer.submit(soon, packets(sender, target, "b"), [2])
    assert not pacer.submit(soon, packets(sender, target, "c"), [3])
    with pytest.raises(ValueError, match="at most 2"):
        pacer.submit(soon, packets(sender, target, "d", "e", "f"), [4, 5, 6])
    pacer.stop()
    assert [receiver.recv(10) for _ in range(2)] == [b"a", b"b"]
    assert [[owner for owner, _ in results] for *_, results in pacer.drain()] == [[1], [2]]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_pacer_reports_a_refused_send_as_none(impl, receiver, sender):
    target = receiver.getsockname()
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.close()
    pacer = impl.Pacer(2).start()
    pacer.submit(time.monotonic_ns(), packets(closed, target, "lost") + packets(sender, target, "kept"), ["x", "y"])
    pacer.stop()
    [(*_, [(_, lost), (_, kept)])] = pacer.drain()
    assert lost is None and kept is not None and receiver.recv(10) == b"kept"


def test_the_compiled_pacer_sends_while_another_thread_holds_the_gil(receiver, sender):
    """``sorted`` of a long shuffled list is one C call that keeps the GIL throughout: a
    thread that needed the GIL would send after it; the compiled pacer's thread sends on time."""
    from parley.core import _pacing

    target = receiver.getsockname()
    numbers = list(range(1_500_000))
    random.Random(4733).shuffle(numbers)
    pacer = _pacing.Pacer(1).start()
    try:
        deadline = time.monotonic_ns() + 20_000_000
        pacer.submit(deadline, packets(sender, target, "on time"), ["call"])
        held_from = time.monotonic_ns()
        sorted(numbers)
        held_until = time.monotonic_ns()
        assert receiver.recv(10) == b"on time"
        [(*_, [(_, late)])] = pacer.drain()
    finally:
        pacer.stop()
    assert held_until - held_from > 100_000_000, "the GIL was not held long enough to tell"
    assert held_from < deadline < held_until and late < 50_000_000


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_deadline_in_the_past_sends_at_once_and_says_how_late(impl, receiver, sender):
    target = receiver.getsockname()
    pacer = impl.Pacer(1).start()
    pacer.submit(time.monotonic_ns() - 50_000_000, packets(sender, target, "x"), ["call"])
    pacer.stop()
    [(_, _, _, [(_, late)])] = pacer.drain()
    assert receiver.recv(10) == b"x" and late >= 50_000_000
