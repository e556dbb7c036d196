"""The envelope and its codec: what goes in comes out, and anything else is a MalformedMessage."""

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.appliance.bus.messages import (
    ENVELOPE_KEYS,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Audio,
    Behaviour,
    MalformedMessage,
    Message,
    Sequencer,
    decode,
    encode,
)

PCM = bytes(range(256)) * 8  # 1024 samples of PCM16


def envelope(**changes):
    wire = {"v": 1, "type": "stt_final", "call_id": "c1", "turn_id": 2, "seq": 3, "t_ns": 4, "body": {"text": "hi"}}
    return [msgpack.packb({**wire, **changes})]


def test_envelope_with_audio_round_trips_and_the_audio_is_byte_identical():
    stamp = Sequencer()
    sent = stamp.make("stt_request", {"sample_rate": 16000, "language": "en"}, call_id="c1", turn_id=7, audio=PCM)
    frames = encode(sent)
    assert len(frames) == 2 and frames[1] is PCM  # handed to zmq as is: no copy, no base64
    assert PCM not in frames[0]
    received = decode(frames)
    assert received == sent
    assert bytes(received.audio) == PCM
    assert set(msgpack.unpackb(frames[0])) == ENVELOPE_KEYS


def test_sequencer_numbers_each_sender_gap_free_on_the_monotonic_clock():
    stamp = Sequencer()
    first, second = stamp.make("heartbeat", _worker_body()), stamp.make("heartbeat", _worker_body())
    assert (first.seq, second.seq) == (0, 1)
    assert 0 < first.t_ns <= second.t_ns


def test_a_job_envelope_carries_the_wrapped_message_and_its_audio():
    stamp = Sequencer()
    segment = stamp.make("stt_request", {"sample_rate": 8000}, call_id="c9", turn_id=1, audio=PCM)
    request = stamp.wrap("request", segment, request_id="r1", service="stt", retryable=True, timeout_ms=500)
    received = decode(encode(request))
    assert (received.call_id, received.turn_id) == ("c9", 1)
    assert received.body["message"] == segment
    assert bytes(received.body["message"].audio) == PCM


def test_every_type_documents_itself_and_interruption_data_is_the_droppable_kind():
    assert all(kind.doc for kind in MESSAGE_TYPES.values())
    for name in ("cancel", "heartbeat", "worker_ready", "shutdown", "error", "barge_in", "call_ended"):
        assert MESSAGE_TYPES[name].behaviour is Behaviour.SYSTEM
    for name in ("llm_token", "tts_audio", "request", "reply"):
        assert MESSAGE_TYPES[name].behaviour is Behaviour.DATA
    assert MESSAGE_TYPES["stt_request"].retryable and MESSAGE_TYPES["tts_request"].retryable
    assert not MESSAGE_TYPES["llm_request"].retryable


# ---- property: any valid body survives the wire ----------------------------------------------
_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text()
_json_like = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12)
_values = {
    str: st.text(),
    int: st.integers(-(2**63), 2**64 - 1),
    float: st.floats(allow_nan=False) | st.integers(-(2**53), 2**53),
    bool: st.booleans(),
    list: st.lists(_json_like, max_size=4),
    dict: st.dictionaries(st.text(), _json_like, max_size=4),
    (str, None): st.none() | st.text(),
}
_plain_types = [name for name, kind in MESSAGE_TYPES.items() if kind.audio is not Audio.OF_WRAPPED]


def _body(kind):
    return st.fixed_dictionaries(
        {name: _values[spec] for name, spec in kind.required.items()},
        optional={name: _values[spec] for name, spec in kind.optional.items()},
    )


@st.composite
def plain_messages(draw, names=st.sampled_from(_plain_types)):
    kind = MESSAGE_TYPES[draw(names)]
    audio = draw(st.binary(max_size=64).map(lambda b: b[: len(b) // 2 * 2])) if kind.audio is Audio.REQUIRED else None
    return Message(
        kind.name, draw(_body(kind)), draw(st.none() | st.text()), draw(st.none() | st.integers(0, 2**63)),
        draw(st.integers(0, 2**64 - 1)), draw(st.integers(0, 2**64 - 1)), audio,
    )


@st.composite
def messages(draw):
    inner = draw(plain_messages())
    if not draw(st.booleans()):
        return inner
    if draw(st.booleans()):
        return Sequencer().wrap("request", inner, request_id=draw(st.text()), service=draw(st.text()),
                                retryable=draw(st.booleans()), timeout_ms=draw(st.integers(0, 2**31)))
    return Sequencer().wrap("reply", inner, request_id=draw(st.text()))


@given(messages())
def test_any_valid_message_round_trips(message):
    received = decode(encode(message))
    assert received == message
    assert (received.audio is None) == (message.audio is None)
    if message.audio is not None:
        assert bytes(received.audio) == message.audio


@given(st.binary(max_size=200))
def test_decoding_random_bytes_raises_malformed_message_and_nothing_else(garbage):
    try:
        decode([garbage])
    except MalformedMessage:
        pass


# ---- everything that is not a message ------------------------------------------------------
@pytest.mark.parametrize(
    "frames, complaint",
    [
        ([b"\xc1"], "not msgpack"),
        ([b"\x92\x01"], "not msgpack"),  # truncated
        ([msgpack.packb([1, 2, 3])], "must be a msgpack map"),
        ([msgpack.packb({"v": 1})], "envelope keys wrong"),
        (envelope(extra=1), "unexpected ['extra']"),
        (envelope(v=PROTOCOL_VERSION + 1), f"unsupported protocol version {PROTOCOL_VERSION + 1}"),
        (envelope(v=True), "unsupported protocol version True"),
        (envelope(type="teleport"), "unknown message type 'teleport'"),
        (envelope(type=["stt_final"]), "unknown message type"),
        (envelope(call_id=5), "call_id must be a string"),
        (envelope(turn_id=-1), "turn_id must be a non-negative integer"),
        (envelope(seq="3"), "seq must be a non-negative integer"),
        (envelope(body=[]), "body must be a map"),
        (envelope(body={}), "missing ['text']"),
        (envelope(body={"text": "hi", "mood": "glad"}), "unexpected ['mood']"),
        (envelope(body={"text": 42}), "text=42 is not str"),
        (envelope(body={"text": "hi", "confidence": True}), "confidence=True is not float"),
        (envelope(type="barge_in", body={"at_ns": 1, "played_samples": 1.5}), "played_samples=1.5 is not int"),
        (envelope() + [PCM], "carries no audio, yet an audio frame came"),
        (envelope(type="tts_audio", body={"sample_rate": 8000, "offset_samples": 0}), "no audio frame came"),
        (envelope(type="tts_audio", body={"sample_rate": 8000, "offset_samples": 0}) + [b"\0\0\0"], "odd length"),
        (envelope() + [PCM, PCM], "expected 1 or 2 frames"),
        ([], "expected 1 or 2 frames"),
        (envelope(type="request", body={"request_id": "r", "service": "s", "retryable": True, "timeout_ms": 1,
                                        "message": "not a message"}), "is not Message"),
    ],
)
def test_malformed_frames_are_rejected_with_the_reason(frames, complaint):
    with pytest.raises(MalformedMessage) as caught:
        decode(frames)
    assert complaint in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_job_envelope_cannot_wrap_another_job_envelope():
    inner = decode(envelope())
    request = Sequencer().wrap("request", inner, request_id="r", service="s", retryable=False, timeout_ms=1)
    wire = msgpack.unpackb(encode(request)[0])
    nested = {**wire, "body": {**wire["body"], "message": wire}}
    with pytest.raises(MalformedMessage, match="may not wrap another job envelope"):
        decode([msgpack.packb(nested)])


def test_building_an_invalid_message_fails_at_once_with_the_schema():
    with pytest.raises(MalformedMessage, match=r"tts_request body: missing \['text'\].*schema: \{text: str, voice\?: str"):
        Sequencer().make("tts_request", {})


def test_encode_refuses_audio_on_a_type_without_it():
    with pytest.raises(MalformedMessage, match="carries no audio"):
        encode(Sequencer().make("llm_token", {"text": "hi"}), audio=PCM)


def _worker_body():
    return {"service": "stt", "worker": "stt-1", "pid": 1, "interval_ms": 1000}
