"""The agent orchestrator as a bus worker (service ``agent``): one LLM, any number of calls.

Stateless between jobs: each ``agent_turn`` carries the conversation state and gets it back
updated, so a restarted worker loses nothing. Agents are loaded on first use by folder (and
re-loaded when their files change); ``PARLEY_AGENT`` names one to load and warm at start-up,
so the first caller turn finds the system prompt already evaluated.
"""

import logging
import os
import time
from functools import partial
from pathlib import Path

from parley.appliance.agent.config import load_agent
from parley.appliance.agent.llm import LlamaEngine, find_model_file
from parley.appliance.agent.orchestrator import AgentRunner, FirstToken, Handoff, Sentence, ToolRun, TurnResult
from parley.appliance.bus.worker import Worker
from parley.appliance.config import load_settings
from parley.appliance.store import Store

log = logging.getLogger("parley.agent.worker")


def agent_variables(settings):
    """The placeholders an agent file's ``tool_config`` may use."""
    return {"var": str(settings.var_dir), "home": str(settings.home), "models": str(settings.models_dir)}


def agent_fingerprint(folder):
    """Changes when any file of the agent folder changes (name, size or modification time)."""
    folder = Path(folder)
    return tuple(sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                        for p in folder.rglob("*") if p.is_file()))


class AgentWorker(Worker):
    service = "agent"

    def setup(self):
        self.settings = load_settings()
        self._engines = {}
        self._runners = {}
        self._store = None
        """Opened by the handler thread on first use: a SQLite connection stays in its thread."""
        preload = os.environ.get("PARLEY_AGENT")
        if preload:
            runner = self.runner(preload)
            started = time.monotonic()
            runner.engine.warm(runner.system_prompt())
            log.info("agent_warm agent=%s seconds=%.2f", runner.config.name, time.monotonic() - started)

    def engine(self, config, model):
        model_path = find_model_file(self.settings.models_dir, model)
        engine = self._engines.get(model_path)
        if engine is None:
            engine = self._engines[model_path] = LlamaEngine(model_path, context_tokens=config.llm.context_tokens,
                                                             threads=int(os.environ.get("PARLEY_LLM_THREADS", 0))
                                                             or config.llm.threads)
        return engine

    def store(self):
        if self._store is None:
            self._store = Store.open(self.settings.db_path)
        return self._store

    def runner(self, folder):
        folder = str(Path(folder).resolve())
        fingerprint = agent_fingerprint(folder)
        cached = self._runners.get(folder)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        config = load_agent(folder, variables=agent_variables(self.settings))
        engine = self.engine(config, config.llm.model)
        self._ensure_tool_data(config)
        runner = AgentRunner(config, engine, audit=self._auditor(config.name))
        self._runners[folder] = (fingerprint, runner)
        log.info("agent_loaded agent=%s folder=%s model=%s", config.name, folder, engine.model_path.name)
        return runner

    def _ensure_tool_data(self, config):
        shop_db = config.tool_config.get("shop_db")
        if shop_db:
            from parley.appliance.demo.shop import ensure_shop

            Path(shop_db).parent.mkdir(parents=True, exist_ok=True)
            ensure_shop(shop_db)

    def _auditor(self, agent_name):
        def audit(action, subject, details):
            self.store().append_audit(actor=f"agent:{agent_name}", action=action, subject=subject, details=details)
        return audit

    def handle(self, message, audio):
        body = message.body
        runner = self.runner(body["agent"])
        if message.type == "agent_prefill":
            # The job ends at once, so the router sends this worker the turn the moment it comes;
            # the prompt is evaluated after the job, giving way to that turn (or any other job).
            self.after_job(partial(self._prefill, "head_start", message.call_id,
                                   partial(runner.prefill_turn, body["state"], body["text"])))
            return
        if "text" in body:
            outputs = runner.respond(body["state"], body["text"], call_id=message.call_id, cancelled=self.cancelled)
        else:
            outputs = runner.start(message.call_id)
        for output in outputs:
            yield self._reply(message, output)
            if isinstance(output, TurnResult) and output.action == "listen" and not self.cancelled.is_set():
                self.after_job(partial(self._prefill, "between_turns", message.call_id,
                                       partial(runner.prefill, output.state)))

    @staticmethod
    def _prefill(kind, call_id, evaluate, stop):
        """Evaluate a prompt ahead (``evaluate(stop)``) while the worker would be idle: the
        conversation between turns, or a head start's reply at the caller's pause."""
        started = time.monotonic()
        prefill = evaluate(stop)
        if prefill is not None:
            log.info("agent_prefill kind=%s call_id=%s tokens=%d cached=%d evaluated=%d complete=%s seconds=%.2f",
                     kind, call_id, prefill.total, prefill.cached, prefill.evaluated, prefill.complete,
                     time.monotonic() - started)

    def _reply(self, request, output):
        if isinstance(output, Sentence):
            return self.reply(request, "llm_sentence", {"text": output.text, "index": output.index})
        if isinstance(output, FirstToken):
            return self.reply(request, "llm_token", {"text": ""})
        if isinstance(output, ToolRun):
            body = {"name": output.name, "arguments": output.arguments, "status": output.status, "message": output.message,
                    "confirmed": output.confirmed, "started_ns": output.started_ns, "ended_ns": output.ended_ns}
            if output.result is not None:
                body["result"] = output.result
            if output.state is not None:
                body["state"] = output.state
            return self.reply(request, "tool_result", body)
        if isinstance(output, Handoff):
            return self.reply(request, "handoff", {"reason": output.reason, "summary": output.summary,
                                                   "collected": output.collected, "transcript": output.transcript})
        if isinstance(output, TurnResult):
            return self.reply(request, "agent_state", {"state": output.state, "action": output.action,
                                                       "kb_chunk_ids": list(output.kb_chunk_ids), "text": output.text})
        raise TypeError(f"unknown agent output {output!r}")


class EvaluatorWorker(AgentWorker):
    """Service ``evaluator``: judges finished calls (``evaluate_call``) with the agent's judge model
    (``testing.judge_model``, else its own), at the lowest CPU priority, in its own process, so
    judging never delays a live call's turn on the agent worker."""

    service = "evaluator"

    def setup(self):
        os.nice(19)
        self.settings = load_settings()
        self._engines = {}
        self._runners = {}
        self._store = None

    def handle(self, message, audio):
        from parley.appliance.platform.evaluation import CallEvaluator

        config = self.runner(message.body["agent"]).config
        model = config.testing.judge_model or config.llm.model
        evaluator = CallEvaluator(config, self.engine(config, model), judge_model=model)
        started = time.monotonic()
        criteria, data = evaluator.evaluate(self.store(), message.call_id)
        log.info("call_evaluated call_id=%s seconds=%.1f", message.call_id, time.monotonic() - started)
        yield self.reply(message, "call_evaluated", {"criteria": {c.criterion: c.result for c in criteria},
                                                     "data": {d.field: d.value for d in data}})
