"""The SIP test harness itself (tests/sip_phone.py), with real baresip phones and a real Kamailio.

Not a test of Parley: these show that the harness's calls carry audio through G.711, that phones
register with digest auth and reach each other through Kamailio by address of record, that DTMF
keys arrive, and that nothing is left running afterwards.
"""

import os
import time

import numpy as np
import pytest
from sip_phone import (
    G711_RATE,
    Baresip,
    Kamailio,
    SipProgramError,
    baresip_available,
    kamailio_available,
    read_wav,
    rms_dbfs,
    tone_share,
    write_wav,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not baresip_available(), reason="baresip with its g711/aufile/sndfile/ctrl_tcp modules is not installed (Debian: baresip-core)"),
]  # fmt: skip
needs_kamailio = pytest.mark.skipif(not kamailio_available(), reason="kamailio and kamcmd are not installed (Debian: kamailio)")

TONE_HZ = 1000
TONE_S = 1.5
TONE_DBFS = -9.0  # a sine at half of full scale


@pytest.fixture
def tone(tmp_path):
    """1.5 s of a 1 kHz sine at half scale, 8 kHz mono: the caller's microphone."""
    t = np.arange(int(TONE_S * G711_RATE)) / G711_RATE
    return write_wav(tmp_path / "tone.wav", (0.5 * 32767 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16))


def loud_part(samples, rate, floor_dbfs=-40.0):
    """The 20 ms frames of a recording louder than ``floor_dbfs``, joined."""
    frame = rate // 50
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)
    return frames[[rms_dbfs(f) > floor_dbfs for f in frames]].reshape(-1)


def assert_heard_the_tone(phone):
    rate, heard = read_wav(phone.recording())
    loud = loud_part(heard, rate)
    assert rate == G711_RATE
    assert abs(len(loud) / rate - TONE_S) <= 0.2, f"heard {len(loud) / rate:.2f}s of tone, sent {TONE_S}s"
    assert tone_share(loud, rate, TONE_HZ) > 0.95
    assert abs(rms_dbfs(loud) - TONE_DBFS) < 1.5


def hang_up(caller, callee):
    caller.hangup()
    caller.wait_for("CALL_CLOSED")
    callee.wait_for("CALL_CLOSED")


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_a_direct_call_carries_the_callers_microphone_to_the_callee(tone, tmp_path, codec):
    with (
        Baresip("alice", microphone=tone, codecs=(codec,), directory=tmp_path / "alice") as alice,
        Baresip("bob", directory=tmp_path / "bob") as bob,
    ):
        alice.dial(bob.uri)
        assert alice.wait_for("CALL_ESTABLISHED").direction == "outgoing"
        incoming = bob.wait_for("CALL_ESTABLISHED")
        assert (incoming.direction, incoming.peer_uri) == ("incoming", alice.uri)
        bob.wait_heard(TONE_S + 0.3)
        hang_up(alice, bob)
        assert f"audio: Set audio decoder: {codec} 8000Hz" in bob.log_text()
        assert_heard_the_tone(bob)
        _, back = read_wav(alice.recording())
        assert rms_dbfs(back) < -60, "bob's microphone is silence"


@needs_kamailio
def test_phones_registered_with_digest_auth_call_each_other_by_address_of_record(tone, tmp_path):
    with (
        Kamailio({"alice": "pw-a", "bob": "pw-b"}, directory=tmp_path / "pbx") as pbx,
        Baresip("alice", registrar=pbx.address, password="pw-a", microphone=tone, directory=tmp_path / "alice") as alice,
        Baresip("bob", registrar=pbx.address, password="pw-b", directory=tmp_path / "bob") as bob,
    ):
        assert pbx.registered("alice") and pbx.registered("bob")
        assert pbx.contacts("bob")[0].endswith(f"@127.0.0.1:{bob.sip_port}")
        alice.dial(pbx.uri("bob"))
        alice.wait_for("CALL_ESTABLISHED")
        assert bob.wait_for("CALL_ESTABLISHED").peer_uri == pbx.uri("alice")
        bob.wait_heard(TONE_S + 0.3)
        hang_up(alice, bob)
        assert_heard_the_tone(bob)
        log = pbx.log_text()
    assert "event=challenge method=REGISTER user=bob" in log
    assert "event=challenge method=INVITE user=alice" in log
    assert "event=route method=INVITE from=alice ruri=sip:bob" in log


@needs_kamailio
def test_a_wrong_password_is_refused_by_the_registrar(tmp_path):
    with Kamailio({"alice": "pw-a"}, directory=tmp_path / "pbx") as pbx:
        with pytest.raises(SipProgramError, match="401"):
            with Baresip("alice", registrar=pbx.address, password="not-it", directory=tmp_path / "alice"):
                pass
        assert not pbx.registered("alice")


def test_dtmf_keys_pressed_on_one_phone_arrive_at_the_other_in_order(tmp_path):
    keys = "159*0#"
    with Baresip("alice", directory=tmp_path / "alice") as alice, Baresip("bob", directory=tmp_path / "bob") as bob:
        alice.dial(bob.uri)
        alice.wait_for("CALL_ESTABLISHED")
        bob.wait_for("CALL_ESTABLISHED")
        alice.send_dtmf(keys)
        received = [bob.wait_for("CALL_DTMF_START", timeout=5).param for _ in keys]
        ended = [bob.wait_for("CALL_DTMF_END", timeout=5) for _ in keys]
        hang_up(alice, bob)
    assert "".join(received) == keys
    assert len(ended) == len(keys)


def process_group_members(pgid):
    """Pids of live (not zombie) processes in a process group."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(int(entry))
    return members


@needs_kamailio
def test_leaving_the_blocks_unregisters_and_leaves_no_process_behind(tmp_path):
    with Kamailio({"alice": "pw-a"}, directory=tmp_path / "pbx") as pbx:
        with Baresip("alice", registrar=pbx.address, password="pw-a", directory=tmp_path / "alice") as alice:
            phone = alice.pid
            assert process_group_members(phone) == [phone]
        assert not pbx.registered("alice"), "baresip unregisters when it is stopped"
        kamailio = pbx.pid
        assert len(process_group_members(kamailio)) > 1, "kamailio runs with its worker children"
    deadline = time.monotonic() + 2
    while process_group_members(kamailio) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_group_members(phone) == []
    assert process_group_members(kamailio) == []


def test_a_phone_killed_from_outside_fails_the_wait_at_once_with_its_log(tmp_path):
    with Baresip("alice", directory=tmp_path / "alice") as alice:
        os.kill(alice.pid, 9)
        started = time.monotonic()
        with pytest.raises(SipProgramError, match="gone while waiting for CALL_ESTABLISHED"):
            alice.wait_for("CALL_ESTABLISHED", timeout=10)
        assert time.monotonic() - started < 2
