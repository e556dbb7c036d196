"""Tests of the SIPp harness itself (``sip_peers`` and ``tests/sipp/``), not of Parley: the pcaps
it writes are well formed, and every caller scenario passes against a stand-in UAS
(``tests/sipp/uas_answer.xml``) on 127.0.0.1, so they are known good before the real UA exists."""

import contextlib
import select
import socket
import struct
import threading
import time

import numpy as np
import pytest

import sip_peers
from parley.core import codecs
from sip_peers import (
    RtpSniffer,
    SippScenarioError,
    can_play_pcap,
    dtmf_pcap,
    free_udp_port,
    read_pcap,
    run_sipp,
    send_malformed_burst,
    sipp_available,
    start_sipp,
    telephone_events,
    tone,
    ulaw_payloads,
    write_rtp_pcap,
)

needs_sipp = pytest.mark.skipif(not sipp_available(), reason="sipp (3.x with PCAP play) is not installed")
needs_raw_socket = pytest.mark.skipif(
    not can_play_pcap(), reason="SIPp's pcap play and the RTP sniffer need root or CAP_NET_RAW")

CALLER_SSRC = 0x5EED0001
AGENT_SSRC = 0x5EED0002
DIGITS = "12#"


def ones_complement_sum(data):
    """Written again here, not imported, so the checksum check does not trust the writer."""
    total = 0
    for i in range(0, len(data) - 1, 2):
        total += (data[i] << 8) | data[i + 1]
    if len(data) % 2:
        total += data[-1] << 8
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


# --------------------------------------------------------------------------------------------
# pcap files
# --------------------------------------------------------------------------------------------

def test_rtp_pcap_has_libpcap_ethernet_ipv4_udp_rtp_with_correct_lengths_and_checksums(tmp_path):
    payloads = [bytes([i]) * 160 for i in range(3)]
    info = write_rtp_pcap(tmp_path / "a.pcap", payloads, payload_type=0, ssrc=0xABCDEF01, start_seq=65534,
                          start_ts=4_294_967_000, src=("127.0.0.1", 6000), dst=("127.0.0.1", 7000))
    data = (tmp_path / "a.pcap").read_bytes()

    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack_from("<IHHiIII", data, 0)
    assert (magic, major, minor, zone, sigfigs, snaplen, linktype) == (0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)

    offset, records = 24, []
    while offset < len(data):
        seconds, micros, included, original = struct.unpack_from("<IIII", data, offset)
        records.append((seconds * 1_000_000 + micros, data[offset + 16:offset + 16 + included]))
        assert included == original
        offset += 16 + included
    assert offset == len(data) and len(records) == 3
    assert [t for t, _ in records] == [0, 20_000, 40_000]

    for i, (_, frame) in enumerate(records):
        assert struct.unpack_from("!H", frame, 12)[0] == 0x0800
        ip = frame[14:]
        assert ip[0] == 0x45 and ip[9] == 17
        assert struct.unpack_from("!H", ip, 2)[0] == len(ip) == 20 + 8 + 12 + 160
        assert ones_complement_sum(ip[:20]) == 0xFFFF, "IPv4 header checksum"
        assert socket.inet_ntoa(ip[12:16]) == "127.0.0.1" == socket.inet_ntoa(ip[16:20])
        udp = ip[20:]
        src_port, dst_port, udp_length, udp_sum = struct.unpack_from("!HHHH", udp, 0)
        assert (src_port, dst_port, udp_length) == (6000, 7000, len(udp))
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, udp_length)
        assert udp_sum == 0 or ones_complement_sum(pseudo + udp) == 0xFFFF, "UDP checksum"
        first, second, sequence, timestamp, ssrc = struct.unpack_from("!BBHII", udp, 8)
        assert first == 0x80
        assert second == (0x80 if i == 0 else 0x00), "marker on the first packet only, PT 0"
        assert sequence == (65534 + i) & 0xFFFF
        assert timestamp == (4_294_967_000 + 160 * i) & 0xFFFFFFFF
        assert ssrc == 0xABCDEF01
        assert udp[20:] == payloads[i]

    assert (info.packets, info.duration_ms, info.next_sequence) == (3, 60, 1)
    assert info.next_timestamp == (4_294_967_000 + 480) & 0xFFFFFFFF


def test_read_pcap_gives_back_what_was_written(tmp_path):
    payloads = ulaw_payloads(tone(440, 0.1))
    write_rtp_pcap(tmp_path / "a.pcap", payloads, payload_type=8, ssrc=7, start_seq=10, start_ts=0,
                   marker_first=False)
    packets = read_pcap(tmp_path / "a.pcap")
    assert [p.payload for p in packets] == payloads
    assert {p.payload_type for p in packets} == {8} and not any(p.marker for p in packets)
    assert [round(p.time_s, 3) for p in packets[:3]] == [0.0, 0.02, 0.04]
    assert packets[0].dst == ("127.0.0.1", 7000)


def test_read_pcap_rejects_a_corrupt_ip_header(tmp_path):
    write_rtp_pcap(tmp_path / "a.pcap", [b"\xff" * 160], payload_type=0, ssrc=1, start_seq=0, start_ts=0)
    data = bytearray((tmp_path / "a.pcap").read_bytes())
    data[24 + 16 + 14 + 8] ^= 0x01  # the TTL, covered by the header checksum
    (tmp_path / "a.pcap").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        read_pcap(tmp_path / "a.pcap")


def test_ulaw_payloads_pad_the_last_packet_and_decode_to_the_signal():
    signal = tone(1000, 0.05, level=0.5)  # 400 samples: two and a half packets
    payloads = ulaw_payloads(signal)
    assert [len(p) for p in payloads] == [160, 160, 160]
    decoded = codecs.ulaw_decode(b"".join(payloads)).astype(np.float32) / 32768
    assert np.max(np.abs(decoded[:400] - signal)) < 0.02
    assert np.max(np.abs(decoded[400:])) < 0.001
    assert ulaw_payloads(np.zeros(160, dtype=np.int16)) == [codecs.ulaw_encode(np.zeros(160, np.int16))]


def test_dtmf_pcap_sends_rfc_4733_events_with_marker_updates_and_three_end_packets(tmp_path):
    info = dtmf_pcap(tmp_path / "d.pcap", "1#", ssrc=9, start_seq=500, start_ts=8000, tone_ms=200,
                     gap_ms=100, update_ms=50, volume=10)
    packets = read_pcap(tmp_path / "d.pcap")
    assert [p.sequence for p in packets] == list(range(500, 500 + len(packets)))
    assert {p.payload_type for p in packets} == {101} and {p.ssrc for p in packets} == {9}

    for digit_index, (event, digit_packets) in enumerate(
            [(1, [p for p in packets if p.payload[0] == 1]), (11, [p for p in packets if p.payload[0] == 11])]):
        assert [p.marker for p in digit_packets] == [True] + [False] * (len(digit_packets) - 1)
        assert {p.timestamp for p in digit_packets} == {8000 + digit_index * 300 * 8}
        fields = [struct.unpack("!BBH", p.payload) for p in digit_packets]
        ends = [f for f in fields if f[1] & 0x80]
        updates = [f for f in fields if not f[1] & 0x80]
        assert len(ends) == 3 and fields[-3:] == ends
        assert {f[1] & 0x3F for f in fields} == {10}
        assert [f[2] for f in updates] == [400, 800, 1200, 1600]
        assert {f[2] for f in ends} == {1600}
        starts = [round(p.time_s * 1000) - digit_index * 300 for p in digit_packets]
        assert starts == [0, 50, 100, 150, 200, 220, 240]

    assert telephone_events(packets) == "1#"
    assert info.packets == 14 and info.duration_ms == 300 + 240 + 20
    assert info.next_sequence == 514 and info.next_timestamp == 8000 + 600 * 8


def test_dtmf_pcap_refuses_a_digit_without_an_event(tmp_path):
    with pytest.raises(ValueError, match="0-9, \\*, # and A-D"):
        dtmf_pcap(tmp_path / "d.pcap", "12x", ssrc=1, start_seq=0, start_ts=0)


# --------------------------------------------------------------------------------------------
# The malformed burst, against a stub UA in Python
# --------------------------------------------------------------------------------------------

class StubUserAgent:
    """Answers just enough SIP to judge the burst: 501 to FOO, 505 to SIP/3.0, 400 to a request
    without Call-ID or with a short body, 200 to OPTIONS; silence to anything unparsable. With
    ``dies_on_junk`` it stops answering after binary junk, as a crashed UA would."""

    def __init__(self, *, dies_on_junk=False):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.dies_on_junk = dies_on_junk
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def _serve(self):
        dead, end = False, time.monotonic() + 30
        while not self._stop.is_set() and time.monotonic() < end:
            if not select.select([self.sock], [], [], 0.05)[0]:
                continue
            data, peer = self.sock.recvfrom(65535)
            status = None if dead else self._status(data)
            if data[:1] not in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
                dead = dead or self.dies_on_junk
            if status:
                self.sock.sendto(f"SIP/2.0 {status} Whatever\r\nContent-Length: 0\r\n\r\n".encode(), peer)

    @staticmethod
    def _status(data):
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("SIP/"):
            return None
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        if parts[2] != "SIP/2.0":
            return 505
        if "Call-ID" not in headers or int(headers.get("Content-Length", "0")) > len(body):
            return 400
        return {"FOO": 501, "OPTIONS": 200}.get(parts[0], 405)


def test_malformed_burst_passes_a_ua_that_survives_it():
    with StubUserAgent() as stub:
        report = send_malformed_burst(stub.address, quiet_wait_s=0.1, answer_wait_s=1.0)
    assert report.problems() == []
    assert report.statuses("unknown_method") == (501,)
    assert report.statuses("missing_call_id") == (400,)
    assert report.statuses("content_length_too_large") == (400,)
    assert report.statuses("sip_version_3") == (505,)
    assert report.statuses("binary_junk") == () and report.statuses("bad_start_line") == ()
    assert report.statuses("options_after_burst") == (200,)


def test_malformed_burst_reports_a_ua_that_stopped_answering():
    with StubUserAgent(dies_on_junk=True) as stub:
        started = time.monotonic()
        report = send_malformed_burst(stub.address, quiet_wait_s=0.1, answer_wait_s=0.6)
    assert time.monotonic() - started < 3
    assert report.problems() == [
        "unknown_method: needed one of [405, 501], got []",
        "options_after_burst: needed one of [200], got []",
    ]


def test_the_harness_stays_on_loopback():
    with pytest.raises(ValueError, match="127.0.0.1"):
        send_malformed_burst(("192.0.2.1", 5060))
    with pytest.raises(ValueError, match="127.0.0.1"):
        run_sipp("uac_cancel.xml", ("192.0.2.1", 5060), variables={"cancel_after_ms": 0})


# --------------------------------------------------------------------------------------------
# The scenarios, against the stand-in UAS
# --------------------------------------------------------------------------------------------

@pytest.fixture
def pcaps(tmp_path):
    """Caller speech (440 Hz, 0.6 s), its digits, and the stand-in agent's voice (1 kHz, 1 s)."""
    audio = write_rtp_pcap(tmp_path / "caller_audio.pcap", ulaw_payloads(tone(440, 0.6)), payload_type=0,
                           ssrc=CALLER_SSRC, start_seq=1000, start_ts=160_000)
    digits = dtmf_pcap(tmp_path / "caller_dtmf.pcap", DIGITS, ssrc=CALLER_SSRC, start_seq=audio.next_sequence,
                       start_ts=audio.next_timestamp, tone_ms=100, gap_ms=60)
    agent = write_rtp_pcap(tmp_path / "agent_audio.pcap", ulaw_payloads(tone(1000, 1.0)), payload_type=0,
                           ssrc=AGENT_SSRC, start_seq=1, start_ts=0)
    return {"audio": audio, "dtmf": digits, "agent": agent}


@contextlib.contextmanager
def stand_in_uas(tmp_path, pcaps, *, hangup_ms=0, calls=1, media_port=None, scenario="uas_answer.xml"):
    """The stand-in for Parley, serving ``calls`` calls on a free port."""
    port = free_udp_port()
    with start_sipp(scenario, None, local_port=port, media_port=media_port, calls=calls, timeout_s=20,
                    variables={"hangup_ms": hangup_ms}, files={"agent_audio.pcap": pcaps["agent"].path},
                    work_dir=tmp_path / "uas") as uas:
        assert uas.wait_bound(port), uas.stop().explain()
        uas.target = ("127.0.0.1", port)
        yield uas


def caller_files(pcaps):
    return {"caller_audio.pcap": pcaps["audio"].path, "caller_dtmf.pcap": pcaps["dtmf"].path}


@needs_sipp
@needs_raw_socket
def test_uac_call_speaks_keys_digits_and_hears_the_agent(tmp_path, pcaps):
    caller_media, agent_media = free_udp_port(pair=True), free_udp_port(pair=True)
    with RtpSniffer([caller_media]) as heard_by_caller, RtpSniffer([agent_media]) as heard_by_agent:
        with stand_in_uas(tmp_path, pcaps, media_port=agent_media) as uas:
            caller = run_sipp("uac_call.xml", uas.target, media_port=caller_media, timeout_s=15,
                              variables={"audio_ms": pcaps["audio"].duration_ms,
                                         "dtmf_ms": pcaps["dtmf"].duration_ms, "listen_ms": 600},
                              files=caller_files(pcaps), work_dir=tmp_path / "uac")
            agent = uas.wait()
    assert caller.ok, caller.explain()
    assert agent.ok, agent.explain()

    speech = [p for p in heard_by_agent.packets if p.payload_type == 0]
    assert len(speech) == pcaps["audio"].packets
    assert {p.src for p in speech} == {("127.0.0.1", caller_media)}, "symmetric RTP from the SDP port"
    assert telephone_events(heard_by_agent.packets) == DIGITS

    (stream,) = heard_by_caller.streams().values()
    assert stream.ssrc == AGENT_SSRC and stream.packets == pcaps["agent"].packets and stream.lost == 0
    (voice,) = heard_by_caller.audio(0).values()
    spectrum = np.abs(np.fft.rfft(voice.astype(np.float32)))
    assert abs(np.argmax(spectrum) * 8000 / len(voice) - 1000) < 10


@needs_sipp
def test_uac_cancel_is_answered_200_and_487_and_acks(tmp_path, pcaps):
    with stand_in_uas(tmp_path, pcaps) as uas:
        caller = run_sipp("uac_cancel.xml", uas.target, timeout_s=10, variables={"cancel_after_ms": 50},
                          work_dir=tmp_path / "uac", extra=["-trace_msg"])
        agent = uas.wait()
    assert caller.ok, caller.explain()
    assert agent.ok, agent.explain()
    (log,) = (tmp_path / "uac").glob("*_messages.log")
    branches = {line.split("branch=")[1].strip()
                for line in log.read_text().splitlines() if line.startswith("Via:")}
    assert len(branches) == 1, f"CANCEL and ACK reuse the INVITE's branch: {branches}"


@needs_sipp
@needs_raw_socket
def test_uac_hold_passes_when_hold_is_answered_recvonly(tmp_path, pcaps):
    with stand_in_uas(tmp_path, pcaps) as uas:
        caller = run_sipp("uac_hold.xml", uas.target, timeout_s=10,
                          variables={"audio_ms": 200, "held_ms": 200, "listen_ms": 100},
                          files=caller_files(pcaps), work_dir=tmp_path / "uac")
        agent = uas.wait()
    assert caller.ok, caller.explain()
    assert agent.ok, agent.explain()


@needs_sipp
@needs_raw_socket
def test_uac_hold_fails_a_ua_that_answers_hold_with_sendrecv(tmp_path, pcaps):
    stand_in = (sip_peers.SCENARIOS / "uas_answer.xml").read_text(encoding="iso-8859-1")
    deaf_to_hold = stand_in.replace('assign_to="direction" value="recvonly"',
                                    'assign_to="direction" value="sendrecv"')
    assert deaf_to_hold != stand_in
    (tmp_path / "uas_deaf_to_hold.xml").write_text(deaf_to_hold, encoding="iso-8859-1")
    with stand_in_uas(tmp_path, pcaps, scenario=tmp_path / "uas_deaf_to_hold.xml") as uas:
        caller = run_sipp("uac_hold.xml", uas.target, timeout_s=10,
                          variables={"audio_ms": 100, "held_ms": 100, "listen_ms": 100},
                          files=caller_files(pcaps), work_dir=tmp_path / "uac")
        uas.stop()
    assert caller.returncode == 1 and caller.failed == 1
    assert "a=recvonly" in caller.error_log


@needs_sipp
@needs_raw_socket
def test_uac_wait_bye_answers_the_agents_bye(tmp_path, pcaps):
    with stand_in_uas(tmp_path, pcaps, hangup_ms=300) as uas:
        started = time.monotonic()
        caller = run_sipp("uac_wait_bye.xml", uas.target, timeout_s=10, files=caller_files(pcaps),
                          work_dir=tmp_path / "uac")
        agent = uas.wait()
    assert caller.ok, caller.explain()
    assert agent.ok, agent.explain()
    assert 0.3 < time.monotonic() - started < 5


@needs_sipp
@needs_raw_socket
def test_uac_load_places_concurrent_calls_that_all_succeed(tmp_path, pcaps):
    with stand_in_uas(tmp_path, pcaps, calls=6) as uas:
        caller = run_sipp("uac_load.xml", uas.target, calls=6, rate=20, max_concurrent=3, timeout_s=15,
                          variables={"call_ms": 300}, files=caller_files(pcaps), work_dir=tmp_path / "uac")
        agent = uas.wait()
    assert caller.ok and caller.successful == 6, caller.explain()
    assert agent.ok and agent.successful == 6, agent.explain()
    assert int(caller.stat_csv[-1]["OutgoingCall(C)"]) == 6


# --------------------------------------------------------------------------------------------
# run_sipp / start_sipp themselves
# --------------------------------------------------------------------------------------------

def test_run_sipp_names_the_variables_a_scenario_needs():
    with pytest.raises(SippScenarioError, match=r"missing \['dtmf_ms', 'listen_ms'\], unknown \['listen'\]"):
        run_sipp("uac_call.xml", variables={"audio_ms": 1, "listen": 2})


@needs_sipp
def test_run_sipp_reports_a_call_nobody_answers_within_its_timeout(tmp_path, pcaps):
    nobody = ("127.0.0.1", free_udp_port())
    started = time.monotonic()
    result = run_sipp("uac_cancel.xml", nobody, timeout_s=2, variables={"cancel_after_ms": 0},
                      work_dir=tmp_path / "uac")
    assert time.monotonic() - started < 2 + sip_peers.SippProcess.GRACE_S
    assert not result.ok and result.successful == 0
    assert result.returncode != 0 and result.timed_out and not result.killed, "SIPp ended itself, at its -timeout"


@needs_sipp
def test_stopping_a_waiting_uas_leaves_no_process(tmp_path, pcaps):
    with stand_in_uas(tmp_path, pcaps) as uas:
        started = time.monotonic()
        result = uas.stop()
    assert time.monotonic() - started < 5
    assert uas.process.poll() is not None
    assert result.successful == 0
