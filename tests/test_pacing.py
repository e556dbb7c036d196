"""Paced sending: packets leave no earlier than their deadline and soon after it, in order, in
both the compiled module (GIL released) and its Python twin."""

import importlib
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


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_packets_leave_at_the_deadline_in_order(impl, receiver):
    target = receiver.getsockname()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        batch = [(sender, f"packet {i}".encode(), pacing.sockaddr(*target), target) for i in range(5)]
        deadline = time.monotonic_ns() + 30_000_000
        late = impl.send_at(deadline, batch)
        received_at = time.monotonic_ns()
        assert [receiver.recv(100) for _ in range(5)] == [f"packet {i}".encode() for i in range(5)]
    assert len(late) == 5 and all(0 <= ns < 20_000_000 for ns in late)
    assert late == sorted(late)
    assert received_at >= deadline


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_deadline_in_the_past_sends_at_once_and_says_how_late(impl, receiver):
    target = receiver.getsockname()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        [late] = impl.send_at(time.monotonic_ns() - 50_000_000, [(sender, b"x", pacing.sockaddr(*target), target)])
    assert receiver.recv(10) == b"x" and late >= 50_000_000


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_refused_send_is_none_and_the_rest_still_go(impl, receiver):
    target = receiver.getsockname()
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        late = impl.send_at(time.monotonic_ns(), [(closed, b"lost", pacing.sockaddr(*target), target),
                                                   (sender, b"kept", pacing.sockaddr(*target), target)])
    assert late[0] is None and late[1] is not None
    assert receiver.recv(10) == b"kept"


def test_an_empty_batch_still_waits_for_the_tick():
    deadline = time.monotonic_ns() + 20_000_000
    assert pacing.send_at(deadline, []) == []
    assert time.monotonic_ns() >= deadline


def test_sockaddr_is_the_kernel_layout():
    address = pacing.sockaddr("127.0.0.1", 5004)
    assert len(address) == 16 and address[2:4] == (5004).to_bytes(2, "big") and address[4:8] == bytes([127, 0, 0, 1])
    assert len(pacing.sockaddr("::1", 5004)) == 28
