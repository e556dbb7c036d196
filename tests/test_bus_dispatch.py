"""The router's decisions and the restart policy, driven directly with exact times (no sockets)."""

import pytest

from parley.appliance.bus.dispatch import Dispatcher, Peer
from parley.appliance.bus.messages import Sequencer
from parley.appliance.bus.settings import BusTiming
from parley.appliance.bus.supervision import RestartPolicy

stamp = Sequencer()
CLIENT = b"client"


def announce(dispatcher, identity, now, service="tts", type="worker_ready"):
    name = identity.decode()
    body = {"service": service, "worker": name, "pid": 100 + len(dispatcher.workers), "interval_ms": 100}
    dispatcher.worker_message(identity, stamp.make(type, body), now)


def submit(dispatcher, request_id, now, *, text="hi", retryable=True, timeout_ms=1000, service="tts", call_id="c1", turn_id=1):
    payload = stamp.make("tts_request", {"text": text}, call_id=call_id, turn_id=turn_id)
    request = stamp.wrap("request", payload, request_id=request_id, service=service, retryable=retryable, timeout_ms=timeout_ms)
    dispatcher.client_message(CLIENT, request, now)


def finish(dispatcher, worker, request_id, now, type="done"):
    dispatcher.worker_message(worker, stamp.make(type, {"request_id": request_id}), now)


def sent(dispatcher):
    out = [(o.peer, o.identity, o.message) for o in dispatcher.outbox]
    dispatcher.outbox.clear()
    return out


def errors(outbox):
    return [(m.body["request_id"], m.body["code"], m.body["reason"]) for peer, _, m in outbox if m.type == "error"]


@pytest.fixture
def dispatcher():
    return Dispatcher(heartbeat_liveness=3, failover_attempts=1)


def test_a_job_goes_to_the_worker_idle_longest(dispatcher):
    announce(dispatcher, b"a", now=0.0)
    announce(dispatcher, b"b", now=0.01)
    submit(dispatcher, "r1", now=0.02)
    finish(dispatcher, b"a", "r1", now=0.03)
    sent(dispatcher)
    submit(dispatcher, "r2", now=0.04)
    (peer, worker, request), = sent(dispatcher)
    assert (peer, worker, request.body["request_id"]) == (Peer.WORKER, b"b", "r2")


def test_jobs_wait_for_a_free_worker_and_then_run_in_order(dispatcher):
    announce(dispatcher, b"a", now=0.0)
    for request_id in ("r1", "r2", "r3"):
        submit(dispatcher, request_id, now=0.01)
    assert [m.body["request_id"] for _, _, m in sent(dispatcher)] == ["r1"]
    finish(dispatcher, b"a", "r1", now=0.02)
    assert [(p, m.type, m.body["request_id"]) for p, _, m in sent(dispatcher)] == [(Peer.CLIENT, "done", "r1"), (Peer.WORKER, "request", "r2")]


def test_a_retryable_job_moves_to_another_worker_when_its_worker_dies(dispatcher):
    announce(dispatcher, b"a", now=0.0)
    announce(dispatcher, b"b", now=0.0)
    submit(dispatcher, "r1", now=0.01)
    (_, first, _), = sent(dispatcher)
    other = b"b" if first == b"a" else b"a"
    dispatcher.worker_lost(first, "killed by signal SIGKILL", now=0.02)
    (peer, worker, request), = sent(dispatcher)
    assert (peer, worker, request.body["request_id"]) == (Peer.WORKER, other, "r1")
    assert dispatcher.counters["failovers"] == 1


def lose_the_running_worker(dispatcher, now):
    (worker,) = [identity for identity, state in dispatcher.workers.items() if state.jobs]
    dispatcher.worker_lost(worker, "killed by signal SIGKILL", now)
    return worker.decode()


def test_a_job_that_is_not_retryable_ends_with_a_typed_error_naming_the_worker_and_cause(dispatcher):
    announce(dispatcher, b"a", now=0.0)
    announce(dispatcher, b"b", now=0.0)
    submit(dispatcher, "r1", now=0.01, retryable=False)
    sent(dispatcher)
    name = lose_the_running_worker(dispatcher, now=0.02)
    ((request_id, code, reason),) = errors(sent(dispatcher))
    assert (request_id, code) == ("r1", "worker_died")
    assert f"tts worker {name} (pid" in reason and "killed by signal SIGKILL" in reason
    assert "not moved to another worker because it is not retryable" in reason
    assert dispatcher.jobs == {}


def test_a_job_that_already_streamed_replies_is_not_run_twice(dispatcher):
    announce(dispatcher, b"a", now=0.0)
    announce(dispatcher, b"b", now=0.0)
    submit(dispatcher, "r1", now=0.01)
    ((_, worker, _),) = sent(dispatcher)
    dispatcher.worker_message(worker, stamp.wrap("reply", stamp.make("tts_done", {"samples": 1}), request_id="r1"), 0.02)
    lose_the_running_worker(dispatcher, now=0.03)
    ((request_id, code, reason),) = errors(sent(dispatcher))
    assert code == "worker_died" and "because 1 replies were already relayed" in reason


def test_a_job_moves_at_most_failover_attempts_times(dispatcher):
    announce(dispatcher, b"a", now=0.0)
    announce(dispatcher, b"b", now=0.0)
    submit(dispatcher, "r1", now=0.01)
    lose_the_running_worker(dispatcher, now=0.02)
    lose_the_running_worker(dispatcher, now=0.03)
    ((request_id, code, reason),) = errors(sent(dispatcher))
    assert code == "worker_died" and "because it already ran on 2 workers" in reason


def test_a_worker_is_declared_dead_when_its_heartbeats_stop_for_liveness_intervals(dispatcher):
    announce(dispatcher, b"a", now=0.0)
    announce(dispatcher, b"a", now=0.1, type="heartbeat")
    assert dispatcher.next_timer() == pytest.approx(0.4)
    dispatcher.handle_timer(0.399)
    assert b"a" in dispatcher.workers
    dispatcher.handle_timer(0.401)
    assert b"a" not in dispatcher.workers
    (lost,) = dispatcher.declared_dead
    assert lost.name == "a" and lost.reason == "missed 3 heartbeats (0.1 s apart)"


def test_a_heartbeat_from_an_unknown_worker_registers_it(dispatcher):
    """A restarted router relearns its workers from their next heartbeat."""
    announce(dispatcher, b"a", now=0.0, type="heartbeat")
    submit(dispatcher, "r1", now=0.01)
    assert [w for _, w, _ in sent(dispatcher)] == [b"a"]


def test_a_queued_job_gives_up_when_no_worker_comes(dispatcher):
    submit(dispatcher, "r1", now=0.0, timeout_ms=200)
    assert dispatcher.next_timer() == pytest.approx(0.2)
    dispatcher.handle_timer(0.2)
    ((request_id, code, reason),) = errors(sent(dispatcher))
    assert (request_id, code) == ("r1", "no_worker")
    assert "no tts worker was alive" in reason


def test_a_queued_job_times_out_when_every_worker_stays_busy(dispatcher):
    announce(dispatcher, b"a", now=0.0)
    submit(dispatcher, "r1", now=0.0, timeout_ms=200)
    submit(dispatcher, "r2", now=0.0, timeout_ms=200)
    announce(dispatcher, b"a", now=0.15, type="heartbeat")
    sent(dispatcher)
    dispatcher.handle_timer(0.2)
    assert errors(sent(dispatcher)) == [("r2", "timeout", "waited 200 ms for a free tts worker; all 1 tts workers stayed busy")]


def test_cancel_drops_queued_jobs_of_the_turn_and_stops_running_ones_on_their_worker(dispatcher):
    announce(dispatcher, b"a", now=0.0)
    submit(dispatcher, "running", now=0.0, turn_id=1)
    submit(dispatcher, "queued", now=0.0, turn_id=1)
    submit(dispatcher, "next-turn", now=0.0, turn_id=2)
    sent(dispatcher)
    dispatcher.client_message(CLIENT, stamp.make("cancel", {"reason": "barge_in"}, call_id="c1", turn_id=1), now=0.01)
    out = sent(dispatcher)
    assert errors(out) == [("queued", "cancelled", "cancelled before a worker took it (barge_in)")]
    (order,) = [m for peer, w, m in out if peer is Peer.WORKER]
    assert order.type == "cancel" and order.body == {"reason": "barge_in", "request_id": "running"}
    assert set(dispatcher.jobs) == {"running", "next-turn"}


def test_a_reply_from_a_worker_that_lost_the_job_is_dropped(dispatcher):
    announce(dispatcher, b"a", now=0.0)
    submit(dispatcher, "r1", now=0.0)
    dispatcher.handle_timer(0.31)  # a went silent
    announce(dispatcher, b"b", now=0.31)
    sent(dispatcher)
    finish(dispatcher, b"a", "r1", now=0.32)  # a wakes up and reports
    assert sent(dispatcher) == []
    assert dispatcher.jobs["r1"].worker == b"b"


def test_a_down_service_refuses_jobs_at_once_with_the_reason(dispatcher):
    submit(dispatcher, "queued", now=0.0, service="asr")
    dispatcher.service_down("asr", "service asr is down: fix it")
    submit(dispatcher, "new", now=0.01, service="asr")
    assert errors(sent(dispatcher)) == [("queued", "service_down", "service asr is down: fix it"),
                                        ("new", "service_down", "service asr is down: fix it")]


def test_a_duplicate_request_id_is_refused(dispatcher):
    submit(dispatcher, "r1", now=0.0)
    submit(dispatcher, "r1", now=0.0)
    assert [code for _, code, _ in errors(sent(dispatcher))] == ["malformed"]


def test_restarts_back_off_and_a_crash_loop_gives_up():
    policy = RestartPolicy(BusTiming(restart_backoff=0.5, restart_backoff_max=2.0, restart_limit=3, restart_window=60))
    assert [policy.exited(t) for t in (0.0, 1.0, 2.0)] == [0.5, 2.0, 4.0]  # 0.5, 1, 2 s
    assert policy.exited(3.0) is None  # a 4th exit within the minute


def test_restarts_that_are_far_apart_are_not_a_crash_loop():
    policy = RestartPolicy(BusTiming(restart_backoff=0.5, restart_limit=1, restart_window=10))
    assert policy.exited(0.0) == 0.5
    assert policy.exited(100.0) == 100.5
