"""`parley call --wav in.wav` / `parley call --mic`: one call to an agent through the whole stack.

With --wav the recording plays as the caller's side from the moment the agent answers; with
--mic you are the caller (headset recommended: the loop's barge-in expects an echo path no
louder than a phone's). The agent's side is written to a WAV and the conversation is printed
with its latency table.
"""

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from parley.appliance.cli import logs
from parley.appliance.cli.demo import print_conversation, print_latency, print_voice_to_voice
from parley.appliance.config import load_settings
from parley.appliance.demo import ACME_DIR
from parley.appliance.media.file_channel import WavCaller, read_wav
from parley.appliance.media.local_audio import LocalAudio, run_local_call
from parley.appliance.media.placer import CallPlacer
from parley.appliance.services import ServicePlan, Services


def register(commands):
    parser = commands.add_parser("call", help="call an agent with a WAV file as the caller")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--wav", type=Path, help="the caller's audio (16-bit PCM WAV, any rate)")
    source.add_argument("--mic", action="store_true", help="talk to the agent through this machine's microphone and speaker")
    parser.add_argument("--agent", type=Path, default=ACME_DIR, help="the agent folder (default: the Acme demo)")
    parser.add_argument("--out", type=Path, help="where to write the agent's side (default: var/calls/<name>-agent.wav)")
    parser.add_argument("--max-seconds", type=float, default=180.0)
    parser.add_argument("--verbose", action="store_true")
    parser.set_defaults(run=run)


def run(args):
    console = Console()
    logs.configure(args.verbose)
    settings = load_settings()
    caller = WavCaller(read_wav(args.wav, 8000), 8000) if args.wav else None
    local = LocalAudio(8000) if args.mic else None
    with console.status("starting the workers"):
        services = Services(ServicePlan(str(args.agent)), settings=settings).start()
    try:
        with CallPlacer(services, args.agent) as placer:
            if local is not None:
                console.print("[bold]you are on the line[/]: speak after the greeting; Ctrl-C hangs up")
                session = placer.session(channel="local", caller="microphone")
                audio = run_local_call(session, local, max_seconds=args.max_seconds)
            else:
                session, audio = placer.place(caller, caller=args.wav.name, max_seconds=args.max_seconds)
    finally:
        services.stop()
    folder = args.out.parent if args.out else settings.var_dir / "calls"
    name = args.out.stem.removesuffix("-agent") if args.out else (args.wav.stem if args.wav else "microphone")
    agent_wav, conversation_wav = audio.write(folder, name)
    print_conversation(console, session)
    print_latency(console, session.turns)
    print_voice_to_voice(console, session.turns)
    console.print(f"call {session.call_id}: agent side {escape(str(agent_wav))}, both sides {escape(str(conversation_wav))}")
    return 0
