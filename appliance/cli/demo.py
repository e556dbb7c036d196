"""`parley demo`: the appliance end to end on the embedded Acme agent, with scripted callers.

Starts every process over the real bus, places the scripted calls through the file channel in
real time, prints each conversation with its tool calls and a per-turn latency table, writes
the audio to ``var/demo/``, and exits 0 only when every call reached its goal.
"""

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from parley.appliance.cli import logs
from parley.appliance.config import load_settings
from parley.appliance.demo import ACME_DIR
from parley.appliance.demo.calls import CALLS, check_goal
from parley.appliance.demo.shop import fresh_copy
from parley.appliance.media.call_session import SPAN_ORDER
from parley.appliance.media.file_channel import ScriptedCaller
from parley.appliance.media.placer import CallPlacer
from parley.appliance.services import ServicePlan, Services
from parley.appliance.store import Store


def register(commands):
    parser = commands.add_parser("demo", help="place scripted calls to the Acme demo agent through the whole stack")
    parser.add_argument("--only", choices=[c.name for c in CALLS], help="place only this call")
    parser.add_argument("--verbose", action="store_true", help="log every worker and call event")
    parser.set_defaults(run=run)


def run(args):
    console = Console()
    logs.configure(args.verbose)
    settings = load_settings()
    agent_folder = ACME_DIR
    with console.status("starting the STT, TTS and agent workers (the LLM evaluates its prompt once)") as status:
        services = Services(ServicePlan(str(agent_folder)), settings=settings)
        services.start(progress=lambda service: status.update(f"{service} ready; waiting for the others"))
    try:
        with CallPlacer(services, agent_folder) as placer:
            shop_db = placer.agent.tool_config["shop_db"]
            fresh_copy(None, shop_db)
            console.print(f"agent [bold]{placer.agent.name}[/] v{placer.version.number}, shop database reset at {escape(str(shop_db))}")
            results, all_turns, placed = [], [], []
            for call in CALLS:
                if args.only and call.name != args.only:
                    continue
                console.rule(f"call: {call.name} — {call.description}")
                caller = ScriptedCaller(call.lines, placer.line_rate)
                session, audio = placer.place(caller)
                placed.append((call, session))
                agent_wav, conversation_wav = audio.write(settings.var_dir / "demo", call.name)
                print_conversation(console, session)
                print_latency(console, session.turns)
                all_turns.extend(session.turns)
                with Store.open(settings.db_path) as store:
                    reached, why = check_goal(call, session, store, shop_db)
                results.append((call, reached, why))
                console.print(f"audio: {escape(str(agent_wav))} (agent), {escape(str(conversation_wav))} (both sides)")
                console.print(("[green]goal reached[/]: " if reached else "[bold red]goal missed[/]: ") + escape(why))
            evaluate(console, placer, placed)
    finally:
        services.stop()
    console.rule("summary")
    print_voice_to_voice(console, all_turns)
    for call, reached, why in results:
        console.print(f"{'[green]✓' if reached else '[bold red]✗'}[/] {call.name}: {escape(why)}")
    return 0 if results and all(reached for _, reached, _ in results) else 1


def evaluate(console, placer, placed):
    """Judge each call on the agent's criteria and extract its data, now that the calls are over."""
    from parley.appliance.bus import BusError
    from parley.appliance.platform.gate import judge_trusted

    console.rule("after the calls: evaluation criteria and collected data (judged by the evaluator worker)")
    agent = placer.agent
    notes = []
    with Store.open(placer.settings.db_path) as store:
        trusted = judge_trusted(store, agent.testing.judge_model or agent.llm.model, notes)
    advisory = set() if trusted else {c.id for c in agent.evaluation_criteria if not c.check}
    for call, session in placed:
        with console.status(f"judging {call.name}"):
            try:
                evaluated = placer.evaluate(session.call_id)
            except BusError as exc:
                console.print(f"[yellow]{call.name}: not evaluated[/] ({escape(str(exc))})")
                continue
        colours = {"success": "green", "failure": "red", "unknown": "yellow"}
        criteria = ", ".join(f"{name} [{colours[result]}]{result}[/]" + (" (advisory)" if name in advisory else "")
                             for name, result in evaluated["criteria"].items())
        data = ", ".join(f"{name}={value!r}" for name, value in evaluated["data"].items() if value is not None)
        console.print(f"{call.name}: {criteria}; data: {escape(data) or 'none'}")
    for note in notes:
        console.print(f"[yellow]advisory[/]: {escape(note)}")


def print_conversation(console, session):
    for turn in session.turns:
        if turn.caller_text:
            console.print(f"[cyan]caller[/]: {escape(turn.caller_text)}")
        for tool in turn.tools:
            detail = json.dumps(tool.get("result")) if tool["status"] == "ok" else tool["message"]
            console.print(f"  [magenta]tool[/] {tool['name']}({escape(json.dumps(tool['arguments']))}) "
                          f"→ {tool['status']}: {escape(detail[:160])}")
        if turn.error:
            console.print(f"  [red]failed[/]: {escape(turn.error)}")
        said = turn.agent_text
        if turn.heard_text is not None:
            said = f"{turn.heard_text} [yellow]⟂ interrupted[/] (unheard: {escape(said[len(turn.heard_text):].strip())})"
        console.print(f"[green]agent[/]: {said}")
    if session.handoff:
        console.print(f"[bold]hand-off[/] to {session.handoff['target']}: {escape(session.handoff['summary'])}")
    console.print(f"outcome: [bold]{session.outcome or 'open'}[/]")


def print_latency(console, turns):
    table = Table(title="latency per turn (ms after the caller stopped speaking)")
    table.add_column("turn")
    for name in SPAN_ORDER[1:]:
        table.add_column(name, justify="right")
    table.add_column("gaps", justify="right")
    ahead = False
    for turn in turns:
        if "user_speech_end" not in turn.spans:
            continue
        start = turn.spans["user_speech_end"]
        ahead = ahead or turn.spans.get("stt_final", start) < turn.spans.get("endpoint", start)
        table.add_row(str(turn.index), *(f"{(turn.spans[n] - start) / 1e6:.0f}" if n in turn.spans else "–"
                                         for n in SPAN_ORDER[1:]), str(turn.playout_gap_ms))
    captions = ["gaps: silence inside the reply, where playout ran dry before its last words were made"]
    if ahead:
        captions.append("stt_final before endpoint: the words were transcribed at the caller's pause (head start), "
                        "while the agent waited to be sure the turn had ended")
    table.caption = "\n".join(captions)
    console.print(table)


def percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def print_voice_to_voice(console, turns):
    values = [t.voice_to_voice_ms for t in turns if t.voice_to_voice_ms is not None]
    if not values:
        console.print("voice-to-voice: no answered turn")
        return
    console.print(f"voice-to-voice latency over {len(values)} turns: p50 {percentile(values, 0.5):.0f} ms, "
                  f"p95 {percentile(values, 0.95):.0f} ms")
