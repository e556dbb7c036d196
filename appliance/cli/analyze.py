"""`parley analyze CALL_ID`: one stored call as a timeline — each turn with its text, latency
spans, tool calls, knowledge used and interruptions — with the moment it went wrong pointed out
and the command that turns that moment into an agent test."""

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from parley.appliance.config import load_settings
from parley.appliance.store import Store

SPANS = ("endpoint", "stt_final", "llm_first_token", "first_sentence", "tts_first_audio", "playout_start")


def register(commands):
    parser = commands.add_parser("analyze", help="a stored call as a timeline, with the turn where it went wrong")
    parser.add_argument("call_id", metavar="CALL_ID")
    parser.set_defaults(run=run)


def run(args):
    from parley.appliance.platform.analysis import analyze
    from parley.appliance.cli import UserError

    with Store.open(load_settings().db_path) as store:
        try:
            analysis = analyze(store, args.call_id)
        except LookupError as exc:
            raise UserError(f"{exc}; `parley calls` lists the stored calls") from None
    show(Console(), analysis)
    return 0


def show(console, analysis):
    call = analysis.call
    console.print(f"call [bold]{call.id}[/] {call.channel}, {call.started_at:%Y-%m-%d %H:%M:%S}, outcome "
                  f"[bold]{call.outcome or 'open'}[/]")
    wrong = {p.turn for p in analysis.problems}
    table = Table(show_lines=False)
    for column in ("turn", "who", "what was said / done", "ms after speech end: " + " / ".join(SPANS)):
        table.add_column(column)
    for turn in analysis.timeline:
        said = escape(turn.text)
        if turn.interrupted:
            said = f"{escape(turn.heard_text or '')} [yellow]⟂ interrupted[/]"
        lines = [said]
        for tool in turn.tools:
            result = json.dumps(tool.result) if tool.result is not None else ""
            lines.append(f"[magenta]{tool.tool}[/]({escape(json.dumps(tool.arguments))}) → {tool.status} {escape(result[:100])}")
        if turn.kb_chunk_ids:
            lines.append(f"[dim]knowledge: {', '.join(turn.kb_chunk_ids)}[/]")
        spans = " / ".join(f"{turn.spans_ms[s]:.0f}" if s in turn.spans_ms else "–" for s in SPANS) if turn.spans_ms else ""
        marker = f"[bold red]▶ {turn.position}[/]" if turn.position in wrong and turn.role == "agent" else str(turn.position)
        table.add_row(marker, turn.role, "\n".join(lines), spans)
    console.print(table)
    for criterion, result, rationale, turn in analysis.evaluations:
        colour = {"success": "green", "failure": "red"}.get(result, "yellow")
        console.print(f"criterion {criterion}: [{colour}]{result}[/] (turn {turn if turn is not None else '–'}) "
                      f"{escape(rationale)}")
    for handoff in analysis.handoffs:
        console.print(f"hand-off ({escape(handoff.reason)}): {escape(handoff.summary)}")
    problem = analysis.went_wrong
    if problem is None:
        console.print("[green]nothing went wrong that the record shows[/] (run the evaluator for the criteria)")
        return
    console.print(f"[bold red]went wrong at turn {problem.turn}[/] ({problem.kind}): {escape(problem.detail)}")
    for other in analysis.problems[1:]:
        console.print(f"  also turn {other.turn} ({other.kind}): {escape(other.detail)}")
    console.print(f"turn it into a test: [bold]{escape(analysis.test_command())}[/]")
