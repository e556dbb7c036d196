"""SIP calls from SIPp, a SIP program nobody here wrote, to the real appliance path: Parley's UA on
real UDP sockets, RTP through the core's CallLoop (real Silero VAD), the workers over real
ZeroMQ, the calls in a real SQLite store. The models are stand-ins (a tone voice, a fixed
transcript, a switchboard agent), so these tests time the SIP and media path, not an LLM; the
voice-loop tests with the real models call in through baresip (test_sip_phone_calls.py)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import fetched
from parley.appliance.media.file_channel import read_wav
from parley.appliance.media.sip.server import FRAME_S, LATE_MS, LEAD_FRAMES, MediaSettings, SipServer
from parley.appliance.media.sip.useragent import SipSettings
from parley.appliance.store import Store
from parley.core.silero import SileroVad
from machine_stalls import MachineStalls
from sip_appliance import ThreadedServer, session_factory, standin_router
from sip_peers import (RtpSniffer, can_play_pcap, dtmf_pcap, free_udp_port, run_sipp, send_malformed_burst,
                       sipp_available, ulaw_payloads, write_rtp_pcap)

pytestmark = [pytest.mark.models,
              pytest.mark.skipif(not sipp_available(), reason="SIPp is not installed (Debian: sip-tester)")]
needs_raw = pytest.mark.skipif(not can_play_pcap(), reason="SIPp plays pcap audio through a raw socket: needs root")


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    router = standin_router(tmp_path_factory.mktemp("run"))
    yield router
    router.stop()


@pytest.fixture(scope="module")
def silero(models_dir):
    return SileroVad(fetched(models_dir, "silero-vad", "silero_vad.onnx"))


@pytest.fixture(scope="module")
def pcaps(models_dir, tmp_path_factory):
    """The caller's side for SIPp: 3 s of beckett.wav as PCMU RTP, then the keys 4 5 1 2 #."""
    folder = tmp_path_factory.mktemp("pcaps")
    speech = read_wav(fetched(models_dir, "beckett", "beckett.wav"), 8000)[:8000 * 3]
    silence = np.zeros(8000, np.float32)
    write_rtp_pcap(folder / "caller_audio.pcap", ulaw_payloads(np.concatenate([silence, speech, silence, silence])),
                   payload_type=0, ssrc=0x1234, start_seq=100, start_ts=1000)
    write_rtp_pcap(folder / "caller_silence.pcap", ulaw_payloads(np.zeros(8000 * 2, np.float32)),
                   payload_type=0, ssrc=0x1234, start_seq=100, start_ts=1000)
    dtmf_pcap(folder / "caller_dtmf.pcap", "4512#", ssrc=0x1234, start_seq=400, start_ts=200_000)
    dtmf_pcap(folder / "caller_zero.pcap", "0#", ssrc=0x1234, start_seq=400, start_ts=200_000)
    return folder


@contextmanager
def appliance(router, silero, tmp_path, *, max_calls=8, **options):
    """Parley's SIP server on a free loopback port, calls made with stand-in models."""
    factory = session_factory(router.endpoints, silero, tmp_path / "parley.db", **options)
    server = SipServer(SipSettings(port=free_udp_port(), max_calls=max_calls), factory,
                       media=MediaSettings(rtp_ports=(30000, 31998)))
    with ThreadedServer(server) as running:
        yield running


def split_by_machine_stalls(late_batches, stalls):
    """The worst lateness of each late ``(due_s, worst_ms, woke_late_ms)`` batch, in two lists:
    the machine's, and the appliance's own. The machine's: those that, less the time the pacer's
    real-time thread woke late, were not late; and those late across a window in which the
    machine ran nothing of ours (from the tick that computed the batch to the moment it left)."""
    machine, ours = [], []
    for due_s, worst_ms, woke_late_ms in late_batches:
        computed_from = due_s - (LEAD_FRAMES + 1) * FRAME_S
        stalled = worst_ms - woke_late_ms <= LATE_MS or stalls.covering(computed_from, due_s + worst_ms / 1000)
        (machine if stalled else ours).append(worst_ms)
    return machine, ours


@needs_raw
def test_a_sipp_call_speaks_keys_digits_hears_the_agent_and_is_stored(router, silero, pcaps, tmp_path):
    """One call end to end; no packet more than 5 ms late but by the machine's doing (as in the
    load test), with the head start's transcription at each pause running beside the media."""
    with appliance(router, silero, tmp_path) as running:
        media_port = free_udp_port(pair=True)
        with RtpSniffer([media_port]) as sniffer, MachineStalls() as stalls:
            result = run_sipp("uac_call.xml", running.target, media_port=media_port, timeout_s=60,
                              variables={"audio_ms": 6000, "dtmf_ms": 2000, "listen_ms": 5000},
                              files={"caller_audio.pcap": pcaps / "caller_audio.pcap",
                                     "caller_dtmf.pcap": pcaps / "caller_dtmf.pcap"})
        assert result.ok, result.explain()
        [finished] = running.wait_finished(1)
        late_batches = [(due / 1e9, worst_ms, woke_ms) for due, worst_ms, woke_ms in running.server.late_batches]
    [stream] = [s for s in sniffer.streams().values() if s.dst[1] == media_port]
    assert stream.payload_types == frozenset({0})
    assert stream.packets >= 40 * stream.duration_s and stream.duration_s > 10
    assert stream.lost == 0
    with Store.open(tmp_path / "parley.db") as store:
        call = store.call(finished.session.call_id)
        turns = store.turns(call.id)
        texts = [(t.role, t.text) for t in turns]
        media = store.call_media(call.id)
        reply = turns[[(t.role, t.text) for t in turns].index(("caller", "Where is my order?")) + 1]
        spans = {span.name: span.t_ns for span in store.spans(reply.id)}
    assert call.channel == "sip" and "Parley test caller" in call.caller and call.outcome == "abandoned"
    assert spans["stt_final"] < spans["endpoint"], "a head start at the caller's pause had the words before the turn ended"
    assert ("caller", "4512") in texts, texts
    assert media["codec"] == "PCMU" and media["dtmf_keys"] == "4512#" and media["ended_by"] == "caller"
    assert media["packets_received"] >= 290 and media["packets_lost"] == 0
    assert 0 <= media["packets_sent"] - stream.packets <= 5, "sent after the sniffer stopped, at most the BYE's way"
    _, ours = split_by_machine_stalls(late_batches, stalls)
    assert ours == [], (late_batches, stalls.windows)


def test_cancel_before_the_answer(router, silero, tmp_path):
    with appliance(router, silero, tmp_path, slow_answer_s=3.0) as running:
        result = run_sipp("uac_cancel.xml", running.target, timeout_s=20, variables={"cancel_after_ms": 500})
        assert result.ok, result.explain()
        time.sleep(3.5)
        assert running.server.calls == {}


@needs_raw
def test_hold_stops_our_audio_and_resume_restarts_it(router, silero, pcaps, tmp_path):
    with appliance(router, silero, tmp_path) as running:
        media_port = free_udp_port(pair=True)
        with RtpSniffer([media_port]) as sniffer:
            result = run_sipp("uac_hold.xml", running.target, media_port=media_port, timeout_s=40,
                              variables={"audio_ms": 2000, "held_ms": 3000, "listen_ms": 2000},
                              files={"caller_audio.pcap": pcaps / "caller_audio.pcap"})
        assert result.ok, result.explain()
    arrivals = np.array([p.time_s for p in sniffer.packets if p.dst[1] == media_port])
    gaps = np.diff(arrivals)
    assert gaps.max() > 1.0, "audio kept flowing while the caller held the call"
    assert (arrivals > arrivals[np.argmax(gaps)] + 0.5).sum() > 10, "no audio after the resume"


@needs_raw
def test_the_agent_hangs_up_with_bye_after_a_silent_caller(router, silero, pcaps, tmp_path):
    flow = {"silence_timeout_s": 2.0, "silence_prompts": 0}
    with appliance(router, silero, tmp_path, flow=flow) as running:
        result = run_sipp("uac_wait_bye.xml", running.target, timeout_s=30,
                          files={"caller_audio.pcap": pcaps / "caller_silence.pcap"})
        assert result.ok, result.explain()
        [finished] = running.wait_finished(1)
    assert finished.ended_by == "agent"


def test_a_malformed_burst_gets_400s_and_the_agent_still_answers(router, silero, tmp_path):
    with appliance(router, silero, tmp_path) as running:
        report = send_malformed_burst(running.target)
        assert report.problems() == []
        assert running.server.agent.counters["malformed"] >= 3



@needs_raw
def test_keying_0_transfers_the_call_with_refer_carrying_the_handoff_id(router, silero, pcaps, tmp_path):
    """The scenario itself fails the call when the REFER's Refer-To lacks X-Parley-Handoff."""
    with appliance(router, silero, tmp_path) as running:
        result = run_sipp("uac_transfer.xml", running.target, timeout_s=30,
                          files={"caller_dtmf.pcap": pcaps / "caller_zero.pcap"})
        assert result.ok, result.explain()
        [finished] = running.wait_finished(1)
    assert finished.ended_by == "transfer"
    with Store.open(tmp_path / "parley.db") as store:
        [handoff] = store.handoffs(finished.session.call_id)
        assert store.call(finished.session.call_id).outcome == "escalated"
    assert handoff.reason == "the caller asked for the operator" and handoff.target == "200"


LOAD_CALLS = int(os.environ.get("PARLEY_SIP_LOAD_CALLS", "50"))
LOAD_CALL_S = 20


@needs_raw
@pytest.mark.slow
def test_load_every_concurrent_call_is_answered_and_no_packet_leaves_late(models_dir, pcaps, tmp_path):
    """N SIPp callers at once through the media path of an appliance process with stand-in models
    (tests/sip_appliance.py): all answered and held together, no RTP packet sent more than 5 ms
    after its time while the machine ran our programs. The pacer says how late its real-time
    thread woke for each batch, and a watcher per CPU (tests/machine_stalls.py) finds the windows
    in which the machine ran nothing of ours (its host took the CPU): a batch late only by the
    pacer's late wake-up, or across such a window, is counted apart; any other fails the test.
    Prints the figures, CPU per call among them."""
    port = free_udp_port()
    command = [sys.executable, str(Path(__file__).parent / "sip_appliance.py"), "--port", str(port),
               "--var", str(tmp_path / "var"), "--models", str(models_dir), "--max-calls", str(LOAD_CALLS)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout.readline().strip() == "READY", "the appliance did not start"
            with MachineStalls() as stalls:
                result = run_sipp("uac_load.xml", ("127.0.0.1", port), calls=LOAD_CALLS, rate=25,
                                  max_concurrent=LOAD_CALLS, timeout_s=LOAD_CALL_S + 60,
                                  variables={"call_ms": LOAD_CALL_S * 1000},
                                  files={"caller_audio.pcap": pcaps / "caller_audio.pcap"})
            time.sleep(2.0)
        finally:
            process.send_signal(signal.SIGTERM)
        figures = json.loads(process.stdout.read().strip().splitlines()[-1])
    assert result.ok and result.successful == LOAD_CALLS, result.explain()
    machine, ours = split_by_machine_stalls(figures["late_batches"], stalls)
    print(f"\nSIP load: {figures['calls']} calls, {figures['peak_calls']} at once, {figures['packets_sent']} RTP "
          f"packets sent, {figures['late_packets']} late (> 5 ms), worst {figures['max_late_ms']:.2f} ms; "
          f"appliance CPU {figures['cpu_s']:.1f} s = "
          f"{100 * figures['cpu_s'] / (figures['packets_sent'] * 0.02):.2f} % of a core per call, peak RSS "
          f"{figures['peak_rss_mb']:.0f} MB; tick work "
          f"p50/p99/max {figures['tick_ms_p50']:.2f}/{figures['tick_ms_p99']:.2f}/{figures['tick_ms_max']:.2f} ms; "
          f"a batch's last packet late p99/max {figures['send_late_ms_p99']:.2f}/{figures['send_late_ms_max']:.2f} ms; "
          f"clock real-time {figures['clock_realtime']}")
    print(f"machine stalls (watchers real-time: {stalls.realtime}): {len(stalls.windows)}, longest "
          f"{max((1000 * (b - a) for a, b in stalls.windows), default=0):.1f} ms; late batches the machine's "
          f"(the pacer woke late, or across a stall): {len(machine)} (worst {max(machine, default=0):.1f} ms); "
          f"late batches otherwise: {ours}")
    assert figures["calls"] == LOAD_CALLS and figures["peak_calls"] == LOAD_CALLS
    assert figures["packets_sent"] >= LOAD_CALLS * (LOAD_CALL_S - 1) * 50 and figures["batches_dropped"] == 0
    print(f"caller packets received per call: {figures['packets_received']}")
    assert ours == [], figures


def test_options_over_tcp_is_answered_on_the_same_connection(router, silero, tmp_path):
    with appliance(router, silero, tmp_path) as running:
        host, port = running.target
        with socket.create_connection((host, port), timeout=5) as conn:
            local = conn.getsockname()
            request = (f"OPTIONS sip:parley@{host}:{port} SIP/2.0\r\n"
                       f"Via: SIP/2.0/TCP {local[0]}:{local[1]};branch=z9hG4bK-tcp-1\r\n"
                       "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=t1\r\nTo: <sip:parley@127.0.0.1>\r\n"
                       "Call-ID: tcp-options-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
            conn.sendall(request[:40])
            time.sleep(0.1)
            conn.sendall(request[40:])
            reply = b""
            while b"\r\n\r\n" not in reply:
                reply += conn.recv(4096)
    assert reply.startswith(b"SIP/2.0 200 OK\r\n") and b"Call-ID: tcp-options-1" in reply


@needs_raw
def test_a_refused_transfer_ends_with_the_apology_and_the_handoff_kept(router, silero, pcaps, tmp_path):
    with appliance(router, silero, tmp_path) as running:
        result = run_sipp("uac_transfer_refused.xml", running.target, timeout_s=30,
                          files={"caller_dtmf.pcap": pcaps / "caller_zero.pcap"})
        assert result.ok, result.explain()
        [finished] = running.wait_finished(1)
    assert finished.ended_by == "agent"
    with Store.open(tmp_path / "parley.db") as store:
        [handoff] = store.handoffs(finished.session.call_id)
        agent_lines = [t.text for t in store.turns(finished.session.call_id) if t.role == "agent"]
    assert handoff.reason == "the caller asked for the operator"
    assert agent_lines[-1] == finished.session.agent.apology, agent_lines


def media_call_on_a_socket(session):
    """A MediaCall reading a real UDP socket (as the media clock does), without a server around it."""
    from parley.appliance.media.sip import sdp
    from parley.appliance.media.sip.server import SO_TIMESTAMPNS, MediaCall

    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.setblocking(False)
    rtp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    offer = sdp.offer(address="127.0.0.1", port=7000, session_id=1, session_version=1)
    answer = sdp.answer(offer, address="127.0.0.1", port=rtp.getsockname()[1], session_id=2, session_version=1)
    return MediaCall(None, "sip-call", session, answer, rtp, None, rtp.getsockname()[1])


class FedSession:
    call_id = "fed"

    def __init__(self):
        self.fed = []

    def feed_rtp(self, seq, timestamp, payload, arrival_ns):
        self.fed.append((seq, arrival_ns))


def test_our_own_stream_echoed_back_is_dropped_not_taken_for_the_caller():
    """RFC 3550 8.2: packets carrying our own SSRC are a loop; the caller's stream still counts."""
    from parley.appliance.media.rtp import RtpPacket

    session = FedSession()
    call = media_call_on_a_socket(session)
    ours = [RtpPacket(0, seq, seq * 160, call.sender.ssrc, bytes(160)).to_bytes() for seq in range(5)]
    theirs = [RtpPacket(0, seq, seq * 160, 0xCAFE, bytes(160)).to_bytes() for seq in range(100, 105)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        for echoed, caller in zip(ours, theirs):
            phone.sendto(echoed, call.rtp.getsockname())
            phone.sendto(caller, call.rtp.getsockname())
        time.sleep(0.05)
        call.receive(time.time_ns() - time.monotonic_ns())
    call.rtp.close()
    assert [seq for seq, _ in session.fed] == [100, 101, 102, 103, 104] and call.looped == 5
    assert call.stats.received == 4


def test_a_packet_is_timed_by_its_arrival_not_by_the_tick_that_reads_it():
    """The clock reads the sockets once a tick: the jitter buffer and the RTCP jitter need the time
    the kernel took the packet in, not the up to 20 ms later the tick came round."""
    from parley.appliance.media.rtp import RtpPacket

    session = FedSession()
    call = media_call_on_a_socket(session)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        sent_ns = time.monotonic_ns()
        phone.sendto(RtpPacket(0, 7, 7 * 160, 0xCAFE, bytes(160)).to_bytes(), call.rtp.getsockname())
        time.sleep(0.08)
        call.receive(time.time_ns() - time.monotonic_ns())
        read_ns = time.monotonic_ns()
    call.rtp.close()
    [(seq, arrival_ns)] = session.fed
    assert seq == 7
    assert sent_ns - 2_000_000 <= arrival_ns <= sent_ns + 20_000_000 < read_ns - 50_000_000


def test_a_flood_on_one_call_is_read_a_batch_a_tick():
    from parley.appliance.media.rtp import RtpPacket
    from parley.appliance.media.sip.server import RECEIVE_BATCH

    session = FedSession()
    call = media_call_on_a_socket(session)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        for seq in range(3 * RECEIVE_BATCH):
            phone.sendto(RtpPacket(0, seq, seq * 160, 0xCAFE, bytes(160)).to_bytes(), call.rtp.getsockname())
        time.sleep(0.05)
        offset = time.time_ns() - time.monotonic_ns()
        call.receive(offset)
        assert len(session.fed) == RECEIVE_BATCH, "one tick reads one batch"
        call.receive(offset)
        call.receive(offset)
    call.rtp.close()
    assert [seq for seq, _ in session.fed] == list(range(3 * RECEIVE_BATCH)), "the rest waits in order"


@needs_raw
def test_calls_one_after_another_each_hear_their_caller(router, silero, pcaps, tmp_path):
    """A finished call's sockets are closed through the loop: the next call's sockets (given the
    same descriptor numbers) must still be read."""
    with appliance(router, silero, tmp_path) as running:
        for _ in range(3):
            result = run_sipp("uac_call.xml", running.target, timeout_s=30,
                              variables={"audio_ms": 2000, "dtmf_ms": 500, "listen_ms": 500},
                              files={"caller_audio.pcap": pcaps / "caller_audio.pcap",
                                     "caller_dtmf.pcap": pcaps / "caller_dtmf.pcap"})
            assert result.ok, result.explain()
        finished = running.wait_finished(3)
    assert [call.stats.received >= 90 for call in finished] == [True, True, True], \
        [call.stats.received for call in finished]
