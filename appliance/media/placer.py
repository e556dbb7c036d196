"""Places calls from this box (the file channel, the local microphone) into the running appliance.

Ties the pieces a call needs, loaded once: the agent file and its stored version, the Silero
model for the call loop's VAD, the acoustic end-of-turn stage, the bus endpoints, the store path.
"""

from pathlib import Path

from parley.appliance.agent.config import load_agent
from parley.appliance.platform.versions import current_version
from parley.appliance.agent.worker import agent_variables
from parley.appliance.bus import BusClient, Sequencer
from parley.appliance.media.call_session import CallSession
from parley.appliance.media.end_of_turn import SharedTranscripts, acoustic_stage
from parley.appliance.media.file_channel import run_call
from parley.appliance.store import Store
from parley.core.silero import SileroVad

SILERO = ("silero-vad", "silero_vad.onnx")
EVALUATION_TIMEOUT_S = 600.0
"""Longest wait for the evaluator: it runs at the lowest priority, after the calls."""


class CallPlacer:
    def __init__(self, services, agent_folder, *, line_rate=16000):
        """``line_rate`` 16000 is a wideband line (the file and local channels); SIP calls are 8000."""
        self.services = services
        self.settings = services.settings
        self.agent_folder = Path(agent_folder).resolve()
        self.agent = load_agent(self.agent_folder, variables=agent_variables(self.settings))
        self.line_rate = line_rate
        silero_path = self.settings.models_dir.joinpath(*SILERO)
        if not silero_path.is_file():
            raise FileNotFoundError(f"{silero_path} is missing: run `parley models fetch`")
        self.silero = SileroVad(silero_path)
        self.transcripts = SharedTranscripts()
        """The turn so far, transcribed once for a call's head start and the end-of-turn check."""
        timings = self.agent.endpointer
        self.acoustic = (acoustic_stage(self.settings.models_dir, services.endpoints, self.transcripts,
                                        services.plan.stt_replicas,
                                        (timings.hangover_ms - timings.short_silence_ms) / 1000)
                         if self.agent.conversation.end_of_turn == "acoustic" else None)
        with Store.open(self.settings.db_path) as store:
            self.version = current_version(store, self.agent.name, self.agent_folder)

    def session(self, *, channel="file", caller="", codec="l16"):
        """A new call's session: ``l16`` at the placer's line rate, or G.711 (``pcmu``/``pcma``) at 8 kHz."""
        return CallSession(agent=self.agent, agent_folder=self.agent_folder, agent_version_id=self.version.id,
                           endpoints=self.services.endpoints, store_path=self.settings.db_path, silero=self.silero,
                           channel=channel, caller=caller, line_rate=self.line_rate if codec == "l16" else 8000,
                           codec=codec, acoustic=self.acoustic, transcripts=self.transcripts)

    def place(self, caller_source, *, channel="file", caller="", realtime=True, max_seconds=240.0):
        """Run one call with ``caller_source`` (a ScriptedCaller or WavCaller); (session, audio)."""
        session = self.session(channel=channel, caller=caller)
        audio = run_call(session, caller_source, realtime=realtime, max_seconds=max_seconds)
        return session, audio

    def close(self):
        """Stop the end-of-turn stage and close its bus clients; the services stay up."""
        if self.acoustic is not None:
            self.acoustic.close()
            self.acoustic.join(timeout=5.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def evaluate(self, call_id):
        """Have the evaluator judge the finished call (criteria, data collection, into the store);
        its ``call_evaluated`` body: criterion -> result, field -> value."""
        client = BusClient(self.services.endpoints.clients, name=f"evaluate-{call_id[:8]}")
        try:
            request = Sequencer().make("evaluate_call", {"agent": str(self.agent_folder)}, call_id=call_id)
            [reply] = [r for r in client.request("evaluator", request, timeout=EVALUATION_TIMEOUT_S)
                       if r.type == "call_evaluated"]
            return reply.body
        finally:
            client.close()
