"""A SIP appliance with stand-in models for tests: the real SipServer, CallSessions and CallLoops
(real Silero VAD), the bus and stand-in workers (a tone voice, a fixed transcript, the
switchboard agent). ``ThreadedServer`` runs one inside a test; run as a script it is a process of
its own, as `parley serve` runs, so the SIP load test measures the media clock in a process like
the real one, not inside pytest's.

    python tests/sip_appliance.py --port P --var DIR --models DIR [--max-calls N]

Prints ``READY`` once listening; on SIGTERM it stops and prints its figures as one JSON line.
"""

import argparse
import asyncio
import faulthandler
import json
import os
import resource
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from parley.appliance.agent.config import load_agent
from parley.appliance.bus import BusTiming, WorkerRouter, WorkerSpec
from parley.appliance.bus.settings import BusEndpoints
from parley.appliance.demo import ACME_DIR
from parley.appliance.media.call_session import CallSession
from parley.appliance.media.sip.server import MediaSettings, SipServer
from parley.appliance.media.sip.useragent import SipSettings
from parley.appliance.store import Store
from parley.core.silero import SileroVad

HERE = Path(__file__).parent


def standin_router(run_dir, *, agent_replicas=1):
    """A started bus router whose workers are the stand-in models."""
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    router = WorkerRouter(BusEndpoints.ipc(run_dir), timing=BusTiming(request_timeout=20.0))
    for service, target, replicas in (("tts", "ToneVoice", 1), ("stt", "FixedTranscript", 1),
                                      ("agent", "SwitchboardAgent", agent_replicas)):
        router.supervise(WorkerSpec(service, f"bus_stand_ins:{target}", replicas, env=env))
    router.start()
    return router


def session_factory(endpoints, silero, store_path, *, flow=None, slow_answer_s=0.0):
    """``SipServer``'s session factory: Acme's settings (``flow`` overrides its conversation
    settings), a version saved in ``store_path``, the bus at ``endpoints``."""
    acme = load_agent(ACME_DIR, variables={"var": str(Path(store_path).parent)})
    if flow:
        acme = replace(acme, conversation=replace(acme.conversation, **flow))
    with Store.open(store_path) as store:
        version = store.save_agent_version("acme", {"files": {}}, author="test", message="SIP test")

    def factory(caller, codec):
        time.sleep(slow_answer_s)
        return CallSession(agent=acme, agent_folder=ACME_DIR, agent_version_id=version.id, endpoints=endpoints,
                           store_path=store_path, silero=silero, channel="sip", caller=caller, line_rate=8000,
                           codec=codec)
    return factory


class ThreadedServer:
    """A SipServer serving in a thread of the test's process (a context manager)."""

    def __init__(self, server):
        self.server = server
        self._ready = threading.Event()
        self._stop = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="sip-server", daemon=True)

    async def _serve(self):
        self._stop = asyncio.Event()
        await self.server.serve(self._stop, self._ready)

    def __enter__(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the SIP server did not start")
        return self

    def __exit__(self, *exc):
        self.server._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    @property
    def target(self):
        settings = self.server.agent.settings
        return (settings.host, settings.port)

    @property
    def uri(self):
        host, port = self.target
        return f"sip:{self.server.agent.settings.user}@{host}:{port}"

    def wait_finished(self, count, timeout_s=20):
        end = time.monotonic() + timeout_s
        while len(self.server.finished) < count and time.monotonic() < end:
            time.sleep(0.05)
        return list(self.server.finished)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--var", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--max-calls", type=int, default=50)
    args = parser.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)
    (args.var / "run").mkdir(parents=True, exist_ok=True)
    router = standin_router(args.var / "run", agent_replicas=2)
    silero = SileroVad(args.models / "silero-vad" / "silero_vad.onnx")
    factory = session_factory(router.endpoints, silero, args.var / "parley.db")
    server = SipServer(SipSettings(port=args.port, max_calls=args.max_calls), factory,
                       media=MediaSettings(rtp_ports=(32000, 33998)))
    try:
        figures = asyncio.run(_serve(server))
    finally:
        router.stop()
    print(json.dumps(figures), flush=True)


async def _serve(server):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    class Ready:
        def set(self):
            print("READY", flush=True)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    await server.serve(stop, Ready())
    used = resource.getrusage(resource.RUSAGE_SELF)
    finished = server.finished
    return {"calls": server.calls_finished, "peak_calls": server.peak_calls, "wall_s": time.monotonic() - started,
            "cpu_s": used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime,
            "peak_rss_mb": used.ru_maxrss / 1024, "clock_realtime": server.clock_realtime,
            "late_batches": [(due / 1e9, worst_ms, woke_late_ms) for due, worst_ms, woke_late_ms in server.late_batches],
            "packets_sent": sum(c.sender.packet_count for c in finished),
            "packets_received": sorted(c.stats.received for c in finished),
            "late_packets": sum(c.late_packets for c in finished),
            "max_late_ms": max((c.max_late_ms for c in finished), default=0.0),
            "tick_ms_p50": float(np.percentile(server.tick_ms, 50)), "tick_ms_p99": float(np.percentile(server.tick_ms, 99)),
            "tick_ms_max": max(server.tick_ms), "send_late_ms_p99": float(np.percentile(server.send_late_ms, 99)),
            "send_late_ms_max": max(server.send_late_ms), "batches_dropped": server.batches_dropped}


if __name__ == "__main__":
    sys.exit(main())
