"""Jobs over real sockets: a router, real worker processes, clients; workers killed and frozen."""

import hashlib
import os
import re
import signal
import threading
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from parley.appliance.bus import (
    BusClient,
    BusEndpoints,
    BusTiming,
    HandlerFailed,
    NoWorkerAvailable,
    RequestCancelled,
    RequestTimeout,
    Sequencer,
    ServiceDown,
    WorkerDied,
    WorkerRouter,
    WorkerSpec,
    decode,
    encode,
)

FAST = BusTiming(
    heartbeat_interval=0.1, heartbeat_liveness=3, request_timeout=3.0,
    restart_backoff=0.05, restart_backoff_max=0.2, restart_limit=2, restart_window=10.0, stop_grace=1.0,
)
PCM = b"\x01\x02" * 8000  # half a second at 16 kHz
stamp = Sequencer()


def worker_spec(target="ScriptedSpeech", service="tts", replicas=1):
    """A spec for one of bus_stand_ins's workers; their interpreters find it on PYTHONPATH."""
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    return WorkerSpec(service, f"bus_stand_ins:{target}", replicas, env={"PYTHONPATH": path})


def say(text, call_id="c1", turn_id=1):
    return stamp.make("tts_request", {"text": text}, call_id=call_id, turn_id=turn_id)


def wait_until(condition, what, timeout=3.0):
    """Poll ``condition`` until it is truthy (and return it), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)
    return value


def busy_worker(router):
    return wait_until(lambda: [w for w in router.status().workers if w.jobs], "a worker to take the job")[0]


def replaced(router, lost):
    return wait_until(lambda: [w for w in router.status().workers if w.name == lost.name and w.pid != lost.pid],
                      f"{lost.name} to be restarted")[0]


@pytest.fixture
def endpoints(tmp_path_factory):
    return BusEndpoints.ipc(tmp_path_factory.mktemp("bus"))


@pytest.fixture
def start_router(endpoints):
    """Start a router supervising ``specs`` and wait for their workers; stopped after the test."""
    routers = []

    def start(*specs, endpoints=endpoints, wait=True):
        router = WorkerRouter(endpoints, timing=FAST)
        for spec in specs:
            router.supervise(spec)
        routers.append(router.start())
        wanted = sum(spec.replicas for spec in specs) if wait else 0
        wait_until(lambda: len(router.status().workers) == wanted, f"{wanted} workers to announce themselves")
        return router

    yield start
    for router in routers:
        router.stop()


def test_a_request_and_its_audio_round_trip_through_a_worker_process(start_router):
    router = start_router(worker_spec("EchoTranscriber", "stt"))
    with BusClient(router.endpoints.clients) as client:
        segment = stamp.make("stt_request", {"sample_rate": 16000}, call_id="c1", turn_id=3)
        partial, final = client.request("stt", segment, audio=PCM)
    assert (partial.type, partial.body) == ("stt_partial", {"text": f"{len(PCM)} bytes"})
    assert (final.type, final.body) == ("stt_final", {"text": hashlib.sha256(PCM).hexdigest()})
    assert (final.call_id, final.turn_id) == ("c1", 3)


def test_the_bus_runs_over_tcp_on_loopback_too(start_router):
    router = start_router(worker_spec(), endpoints=BusEndpoints(*["tcp://127.0.0.1:*"] * 4))
    assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", router.endpoints.clients)
    with BusClient(router.endpoints.clients) as client:
        audio, done = client.request("tts", say("hello"))
    assert bytes(audio.audio) == b"hello " and done.body == {"samples": 3}


def test_a_killed_workers_retryable_job_moves_to_another_worker_and_the_dead_one_is_restarted(start_router):
    router = start_router(worker_spec(replicas=2))
    with BusClient(router.endpoints.clients) as client:
        replies = client.stream("tts", say("sleep:0.4"))
        victim = busy_worker(router)
        os.kill(victim.pid, signal.SIGKILL)
        audio, done = list(replies)
        assert bytes(audio.audio) == b"sleep:0.4 " and done.type == "tts_done"
        status = router.status()
        assert status.failovers == 1
        assert (status.lost[-1].name, status.lost[-1].reason) == (victim.name, "killed by signal SIGKILL")

        restarted = replaced(router, victim)
        both = [client.stream("tts", say("sleep:0.1")) for _ in range(2)]  # one job per worker
        assert [len(list(replies)) for replies in both] == [2, 2]
    assert [w.served for w in router.status().workers if w.pid == restarted.pid] == [1]


def test_a_killed_workers_non_retryable_job_ends_with_a_typed_error_and_the_restarted_worker_serves(start_router):
    router = start_router(worker_spec())
    with BusClient(router.endpoints.clients) as client:
        replies = client.stream("tts", say("sleep:3"), retryable=False)
        victim = busy_worker(router)
        os.kill(victim.pid, signal.SIGKILL)
        with pytest.raises(WorkerDied) as died:
            list(replies)
        assert died.value.worker == victim.name
        assert f"tts worker {victim.name} (pid {victim.pid}) died running it: killed by signal SIGKILL" in str(died.value)
        assert "not retryable" in str(died.value)

        replaced(router, victim)
        assert [m.type for m in client.request("tts", say("again"))] == ["tts_audio", "tts_done"]


def test_a_worker_that_stops_heart_beating_is_declared_dead_killed_and_replaced(start_router):
    router = start_router(worker_spec())
    with BusClient(router.endpoints.clients) as client:
        replies = client.stream("tts", say("sleep:3"), retryable=False)
        victim = busy_worker(router)
        os.kill(victim.pid, signal.SIGSTOP)  # frozen: no heartbeats, no exit
        started = time.monotonic()
        with pytest.raises(WorkerDied, match="missed 3 heartbeats"):
            list(replies)
        assert time.monotonic() - started < 1.0  # 3 x 0.1 s, not the job's 3 s
    replaced(router, victim)
    assert [(e.name, e.reason) for e in router.status().exits] == [(victim.name, "killed by signal SIGKILL")]


def test_heartbeats_keep_a_worker_alive_through_a_long_handler_that_holds_the_gil(start_router):
    router = start_router(worker_spec())
    (worker,) = router.status().workers
    with BusClient(router.endpoints.clients) as client:
        audio, done = client.request("tts", say("spin:1.0"))  # ten heartbeat intervals
    status = router.status()
    assert status.lost == () and [w.pid for w in status.workers] == [worker.pid]


def test_cancel_reaches_the_handler_in_flight(start_router):
    router = start_router(worker_spec())
    with BusClient(router.endpoints.clients) as agent, BusClient(router.endpoints.clients) as call_loop:
        replies = agent.stream("tts", say("until-cancel:5", call_id="c7", turn_id=4))
        first = next(replies)  # the handler is running and waiting
        assert first.type == "tts_audio"
        started = time.monotonic()
        call_loop.cancel("c7", 4, reason="barge_in")
        with pytest.raises(RequestCancelled, match=r"cancelled \(barge_in\)"):
            next(replies)
        assert time.monotonic() - started < 1.0  # the handler woke up; it did not sit out its 5 s


def test_work_left_after_a_job_runs_once_it_is_done_and_gives_way_to_the_next_job(start_router):
    router = start_router(worker_spec())
    with BusClient(router.endpoints.clients) as client:
        assert client.request("tts", say("then-idle:5")) == []  # done is sent before the idle work starts
        time.sleep(0.3)
        audio, done = client.request("tts", say("idle-report"))
    outcome, seconds = re.fullmatch(r"(gave way|ran out) after ([\d.]+) s", bytes(audio.audio).decode().strip()).groups()
    assert outcome == "gave way" and float(seconds) < 2.0  # the 5 s of work stopped for the report


def test_work_left_after_a_job_that_raises_is_logged_and_the_worker_keeps_serving(start_router):
    router = start_router(worker_spec())
    (worker,) = router.status().workers
    with BusClient(router.endpoints.clients) as client:
        assert client.request("tts", say("then-idle-fail")) == []
        audio, done = client.request("tts", say("idle-report"))
    assert bytes(audio.audio).decode().strip() == "no idle work ran"
    assert router.status().lost == () and [w.pid for w in router.status().workers] == [worker.pid]


def test_a_handler_that_raises_ends_its_job_with_handler_failed_and_the_worker_keeps_serving(start_router):
    router = start_router(worker_spec())
    with BusClient(router.endpoints.clients) as client:
        with pytest.raises(HandlerFailed, match="tts-1 failed on tts_request: RuntimeError: scripted failure"):
            client.request("tts", say("fail"))
        assert len(client.request("tts", say("fine"))) == 2


def test_a_job_for_a_service_nobody_offers_gives_up_with_no_worker_available(start_router):
    router = start_router()
    with BusClient(router.endpoints.clients) as client:
        with pytest.raises(NoWorkerAvailable, match="no stt worker was alive"):
            client.request("stt", stamp.make("stt_request", {"sample_rate": 8000}), audio=PCM, timeout=0.2)


def test_a_client_stops_waiting_after_its_timeout(start_router):
    router = start_router(worker_spec())
    with BusClient(router.endpoints.clients) as client:
        with pytest.raises(RequestTimeout, match="no reply from a tts worker within 0.2 s"):
            client.request("tts", say("sleep:1"), timeout=0.2)


def test_a_crash_looping_service_is_marked_down_and_clients_are_told_why(start_router):
    router = start_router(worker_spec("MissingModel", "asr"), wait=False)
    down = wait_until(lambda: router.status().services_down.get("asr"), "asr to be marked down", timeout=5.0)
    assert "exited with code 1" in down and "run `parley models fetch`" in down
    assert len(router.status().exits) == FAST.restart_limit + 1
    with BusClient(router.endpoints.clients) as client:
        with pytest.raises(ServiceDown, match="service asr is down"):
            client.request("asr", stamp.make("stt_request", {"sample_rate": 8000}), audio=PCM)


def test_the_router_rejects_malformed_frames_and_keeps_serving(start_router):
    router = start_router(worker_spec())
    context = zmq.Context.instance()
    with context.socket(zmq.DEALER) as rogue_worker, context.socket(zmq.DEALER) as rogue_client:
        rogue_worker.connect(router.endpoints.workers)
        rogue_client.connect(router.endpoints.clients)
        rogue_worker.send(b"\xc1 not msgpack")
        rogue_worker.send_multipart([*encode(say("hi")), b"extra", b"frames"])
        rogue_worker.send(msgpack.packb({"v": 1, "type": "heartbeat", "call_id": None, "turn_id": None, "seq": 0, "t_ns": 0, "body": {}}))
        rogue_client.send(b"garbage")
        assert rogue_client.poll(2000), "the router should answer a client's garbage"
        answer = decode(rogue_client.recv_multipart())
        assert (answer.type, answer.body["code"]) == ("error", "malformed")
        wait_until(lambda: router.status().malformed == 4, "four rejected frames")
    with BusClient(router.endpoints.clients) as client:
        assert len(client.request("tts", say("still here"))) == 2


def test_a_worker_rejects_malformed_frames_and_keeps_serving(tmp_path_factory):
    from bus_stand_ins import ScriptedSpeech

    endpoint = f"ipc://{tmp_path_factory.mktemp('w')}/fake-router.sock"
    with zmq.Context.instance().socket(zmq.ROUTER) as fake_router:
        fake_router.bind(endpoint)
        worker = ScriptedSpeech(endpoint, name="tts-t", heartbeat_interval=0.1)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            assert fake_router.poll(3000)
            identity, ready = fake_router.recv_multipart()
            assert decode([ready]).type == "worker_ready"
            fake_router.send_multipart([identity, b"\x00\xff garbage"])
            fake_router.send_multipart([identity, *encode(say("hi")), b"audio?", b"more"])
            request = stamp.wrap("request", say("hi"), request_id="r1", service="tts", retryable=True, timeout_ms=1000)
            fake_router.send_multipart([identity, *encode(request)])
            got = []
            while not got or got[-1] != "done":
                assert fake_router.poll(3000), f"worker stopped answering after {got}"
                message = decode(fake_router.recv_multipart()[1:])
                if message.type != "heartbeat":
                    got.append(message.type)
            assert got == ["reply", "reply", "done"]
            assert worker.malformed == 2
        finally:
            worker.stop()
            thread.join(timeout=2)
        assert not thread.is_alive()
