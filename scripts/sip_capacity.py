"""How many concurrent SIP calls this machine serves with the real models before the
voice-to-voice p95 passes the bar (2 s by default): the capacity figure of the SIP issue.

    sudo .venv/bin/python scripts/sip_capacity.py [--most 4] [--bar-ms 2000]

Starts the appliance's real workers (Whisper, the Piper voice, the LLM) on a scratch var folder
and Parley's SIP server on loopback; then for k = 1, 2, ... runs k SIPp callers at once
(tests/sipp/uac_load.xml), each asking three questions in the Piper voice over G.711 with pauses
between them, and reads every answer's voice-to-voice latency (caller's speech end to the
agent's first audio) from the finished sessions. Stops at the first k whose p95 passes the bar.
SIPp plays its audio through a raw socket: run as root.
"""

import argparse
import asyncio
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sip_peers import free_udp_port, run_sipp, ulaw_payloads, write_rtp_pcap  # noqa: E402

from parley.appliance.config import load_settings  # noqa: E402
from parley.appliance.demo import ACME_DIR  # noqa: E402
from parley.appliance.media.placer import CallPlacer  # noqa: E402
from parley.appliance.media.sip.server import MediaSettings, SipServer  # noqa: E402
from parley.appliance.media.sip.useragent import SipSettings  # noqa: E402
from parley.appliance.services import ServicePlan, Services  # noqa: E402
from parley.appliance.speech import Synthesizer  # noqa: E402

QUESTIONS = ("Hello. Where is my order four five one two?", "When will it arrive?",
             "Can the courier leave it with my neighbour?")
"""Questions that keep the call open: SIPp hangs up on its own schedule."""
PAUSE_S = 14


def caller_pcap(models_dir, folder):
    voice = Synthesizer(models_dir / "voice-en_US-joe-medium", deterministic=True)
    parts = [np.zeros(8000 * 6, np.float32)]
    for question in QUESTIONS:
        parts += [voice.speak(question, out_rate=8000), np.zeros(8000 * PAUSE_S, np.float32)]
    audio = np.concatenate(parts)
    write_rtp_pcap(folder / "caller_audio.pcap", ulaw_payloads(audio), payload_type=0, ssrc=0x5151, start_seq=1,
                   start_ts=0)
    return folder / "caller_audio.pcap", audio.shape[0] / 8000


def serve(server, ready, stopper):
    async def run():
        stop = asyncio.Event()
        stopper.append((asyncio.get_running_loop(), stop))
        await server.serve(stop, ready)
    asyncio.run(run())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--most", type=int, default=4, help="the most concurrent calls to try")
    parser.add_argument("--bar-ms", type=float, default=2000.0, help="the voice-to-voice p95 to stay under")
    parser.add_argument("--verbose", action="store_true", help="log the appliance's events to stderr")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    scratch = Path(tempfile.mkdtemp(prefix="parley-capacity-"))
    settings = load_settings().with_var(scratch / "var")
    pcap, seconds = caller_pcap(settings.models_dir, scratch)
    print(f"caller: {len(QUESTIONS)} questions over {seconds:.0f} s; workers starting", flush=True)
    with Services(ServicePlan(str(ACME_DIR)), settings=settings) as services:
        placer = CallPlacer(services, ACME_DIR)
        port = free_udp_port()
        server = SipServer(SipSettings(port=port, max_calls=args.most),
                           lambda caller, codec: placer.session(channel="sip", caller=caller, codec=codec),
                           media=MediaSettings(rtp_ports=(38000, 39998)))
        ready, stopper = threading.Event(), []
        thread = threading.Thread(target=serve, args=(server, ready, stopper), daemon=True)
        thread.start()
        ready.wait(10)
        try:
            for calls in range(1, args.most + 1):
                before = len(server.finished)
                started = time.monotonic()
                result = run_sipp("uac_load.xml", ("127.0.0.1", port), calls=calls, rate=calls,
                                  max_concurrent=calls, timeout_s=seconds + 120,
                                  variables={"call_ms": int(seconds * 1000) + 4000},
                                  files={"caller_audio.pcap": pcap})
                deadline = time.monotonic() + 30
                while len(server.finished) < before + calls and time.monotonic() < deadline:
                    time.sleep(0.1)
                sessions = [c.session for c in list(server.finished)[before:]]
                latencies = [t.voice_to_voice_ms for s in sessions for t in s.turns if t.voice_to_voice_ms is not None]
                late = sum(c.late_packets for c in list(server.finished)[before:])
                for session in sessions:
                    print(f"  call {session.call_id[:8]}: {session.outcome}, "
                          + " | ".join(f"{t.action}:{t.error or t.agent_text[:40]!r}" for t in session.turns))
                if not result.ok or not latencies:
                    print(f"{calls} at once: SIPp ok={result.ok}, {len(latencies)} answers timed; stopping\n"
                          f"{result.explain()}")
                    break
                p50, p95 = np.percentile(latencies, 50), np.percentile(latencies, 95)
                print(f"{calls} at once: {len(latencies)} answers, voice-to-voice p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
                      f"max {max(latencies):.0f} ms; {late} RTP packets late; {time.monotonic() - started:.0f} s",
                      flush=True)
                if p95 > args.bar_ms:
                    print(f"capacity: p95 passes {args.bar_ms:.0f} ms at {calls} concurrent call(s): "
                          f"this machine serves {calls - 1} within the bar")
                    break
            else:
                print(f"capacity: at least {args.most} concurrent calls within {args.bar_ms:.0f} ms")
        finally:
            loop, stop = stopper[0]
            loop.call_soon_threadsafe(stop.set)
            thread.join(30)


if __name__ == "__main__":
    main()
