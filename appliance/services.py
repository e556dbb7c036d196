"""The appliance's processes: the bus router with its supervised model workers (STT, TTS, agent,
and the evaluator that judges finished calls).

``Services`` starts them and waits until every service has a worker that loaded its models, so
the first call is not answered by a cold stack; `parley demo`, `parley call` and `parley serve`
all start the appliance this way.
"""

import logging
import os
import time
from dataclasses import dataclass

from parley.appliance.bus import BusEndpoints, BusTiming, WorkerRouter, WorkerSpec
from parley.appliance.config import load_settings

log = logging.getLogger("parley.services")

STT = "parley.appliance.speech.workers:SttWorker"
TTS = "parley.appliance.speech.workers:TtsWorker"
AGENT = "parley.appliance.agent.worker:AgentWorker"
EVALUATOR = "parley.appliance.agent.worker:EvaluatorWorker"
READY_TIMEOUT_S = 300.0
"""Longest wait for every worker to load its models (the LLM's first prompt evaluation on a
2-core machine takes about a minute)."""


class ServicesNotReady(RuntimeError):
    """A service has no live worker after the start-up wait; the message gives its last exit."""


@dataclass(frozen=True)
class ServicePlan:
    agent_folder: str
    stt_replicas: int = 2
    """Two, so that the end-of-turn check's two readings of a pause are transcribed at once: on
    the evaluation set, with this 2-vCPU machine's compute counted in, the verdict after a
    complete turn then lands at a median 329-364 ms instead of 523-586 ms (two runs of
    scripts/evaluate_turn_taking.py --acoustic-only)."""
    tts_replicas: int = 1
    agent_replicas: int = 1


class Services:
    def __init__(self, plan, *, settings=None, timing=BusTiming(request_timeout=30.0)):
        self.settings = settings or load_settings()
        self.plan = plan
        self.endpoints = BusEndpoints.from_settings(self.settings)
        self.router = WorkerRouter(self.endpoints, timing=timing)
        env = {"PARLEY_HOME": str(self.settings.home), "PARLEY_MODELS": str(self.settings.models_dir),
               "PARLEY_VAR": str(self.settings.var_dir)}
        self.router.supervise(WorkerSpec("stt", STT, plan.stt_replicas, env))
        self.router.supervise(WorkerSpec("tts", TTS, plan.tts_replicas, env))
        self.router.supervise(WorkerSpec("agent", AGENT, plan.agent_replicas, {**env, "PARLEY_AGENT": str(plan.agent_folder)}))
        self.router.supervise(WorkerSpec("evaluator", EVALUATOR, 1, env))

    def start(self, *, ready_timeout=READY_TIMEOUT_S, progress=None):
        """Start the router and workers; return once each service a call needs has a live worker
        (the evaluator, needed only after a call, may still be loading)."""
        self.router.start()
        self.endpoints = self.router.endpoints
        deadline = time.monotonic() + ready_timeout
        waiting = {"stt", "tts", "agent"}
        while waiting:
            status = self.router.status()
            for service in sorted(waiting):
                if status.live(service):
                    waiting.discard(service)
                    if progress:
                        progress(service)
            if not waiting:
                break
            down = {s for s in waiting if s in status.services_down}
            if down or time.monotonic() > deadline:
                exits = [f"{e.service}: {e.reason}\n{e.output_tail}" for e in status.exits if e.service in waiting]
                self.stop()
                raise ServicesNotReady(
                    f"no worker for {', '.join(sorted(waiting))} after {ready_timeout:.0f} s"
                    + (" (crash loop)" if down else "") + ("; last exits:\n" + "\n".join(exits[-3:]) if exits else "")
                    + "\nrun `parley doctor` to check models and runtimes")
            time.sleep(0.1)
        log.info("services_ready pid=%d stt=%d tts=%d agent=%d", os.getpid(), self.plan.stt_replicas,
                 self.plan.tts_replicas, self.plan.agent_replicas)
        return self

    def stop(self):
        self.router.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
