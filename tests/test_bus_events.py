"""Call events over PUB/SUB through the hub: filtered by call and by type; garbage is dropped."""

import time

import pytest
import zmq

from parley.appliance.bus import BusEndpoints, EventHub, EventPublisher, EventSubscriber, Sequencer, encode
from parley.appliance.bus.events import topic

stamp = Sequencer()


def event(type, call_id, **body):
    defaults = {"call_started": {"caller": "201", "callee": "100", "agent": "acme"}, "speech_start": {"at_ns": 1},
                "call_ended": {"reason": "hangup"}}
    return stamp.make(type, {**defaults.get(type, {}), **body}, call_id=call_id, turn_id=0)


def joined(publisher, subscribers, probe_call="probe"):
    """Publish probes until every subscriber hears one: PUB/SUB has no handshake to wait on."""
    deadline = time.monotonic() + 3
    waiting = set(subscribers)
    while waiting:
        assert time.monotonic() < deadline, "subscribers never joined"
        publisher.publish(event("call_ended", probe_call))
        waiting = {s for s in waiting if s.receive(0.02) is None}
    for subscriber in subscribers:  # drain probes still in flight
        while subscriber.receive(0.05) is not None:
            pass


@pytest.fixture
def hub(tmp_path_factory):
    with EventHub(BusEndpoints.ipc(tmp_path_factory.mktemp("ev"))) as hub:
        yield hub


def test_subscribers_get_only_the_calls_and_types_they_asked_for(hub):
    publisher = EventPublisher(hub.events_in)
    everything = EventSubscriber(hub.events_out)
    call_b = EventSubscriber(hub.events_out, call_ids=["b", "probe"])
    call_ends = EventSubscriber(hub.events_out, types=["call_ended"])
    call_a_starts = EventSubscriber(hub.events_out, call_ids=["a", "probe"], types=["call_started", "call_ended"])
    subscribers = [everything, call_b, call_ends, call_a_starts]
    try:
        joined(publisher, subscribers)
        sent = [event("call_started", "a"), event("call_started", "b"), event("speech_start", "a"),
                event("call_ended", "b"), event("call_ended", "a"), event("call_started", "ab")]
        for message in sent:
            publisher.publish(message)

        def heard(subscriber):
            got = []
            while (message := subscriber.receive(0.1)) is not None:
                got.append((message.type, message.call_id))
            return got

        assert heard(everything) == [(m.type, m.call_id) for m in sent]
        assert heard(call_b) == [("call_started", "b"), ("call_ended", "b")]  # not "ab"
        assert heard(call_ends) == [("call_ended", "b"), ("call_ended", "a")]
        assert heard(call_a_starts) == [("call_started", "a"), ("call_ended", "a")]
    finally:
        for socket in [publisher, *subscribers]:
            socket.close()


def test_a_subscriber_rejects_malformed_frames_and_keeps_receiving(tmp_path_factory):
    endpoint = f"ipc://{tmp_path_factory.mktemp('ev')}/sub.sock"
    subscriber = EventSubscriber(endpoint, bind=True)
    publisher = EventPublisher(endpoint)
    with zmq.Context.instance().socket(zmq.PUB) as rogue:
        rogue.connect(endpoint)
        try:
            joined(publisher, [subscriber])
            deadline = time.monotonic() + 3
            while subscriber.malformed < 3:  # resend until the rogue's connection has joined too
                assert time.monotonic() < deadline, "the rogue publisher was never heard"
                rogue.send(b"lonely frame")
                rogue.send_multipart([b"a\0call_started\0", b"\xc1garbage"])
                rogue.send_multipart([b"a\0speech_start\0", *encode(event("call_started", "a"))])  # the topic lies
                subscriber.receive(0.02)
            publisher.publish(event("speech_start", "a"))
            heard = []
            while (message := subscriber.receive(1)) is not None and message.type != "speech_start":
                heard.append(message.type)
            assert message is not None and message.call_id == "a", f"heard only {heard}"
        finally:
            publisher.close()
            subscriber.close()


def test_only_call_events_may_be_published(tmp_path_factory):
    publisher = EventPublisher(f"ipc://{tmp_path_factory.mktemp('ev')}/pub.sock", bind=True)
    try:
        with pytest.raises(ValueError, match="llm_token is not a call event"):
            publisher.publish(stamp.make("llm_token", {"text": "hi"}, call_id="a"))
    finally:
        publisher.close()


def test_a_call_topic_never_matches_a_longer_call_id():
    assert not topic("ab", "call_started").startswith(topic("a"))
    assert topic("a", "call_started").startswith(topic("a"))
