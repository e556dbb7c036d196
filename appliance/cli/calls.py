"""`parley calls`: find an agent's calls by how they were judged, by tool errors and by collected data.

    parley calls [AGENT] [--where criterion=ID:RESULT ...] [--tool-errored] [--version vN]
                 [--data FIELD=VALUE ...] [--limit N]

Newest first; every filter must hold, and --where and --data repeat. RESULT is success, failure or
unknown: a stored judgement, so `unknown` does not match a call not judged yet. --data compares
the collected value as text, case-insensitively (`A1001`, `true`, `42`).
"""

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from parley.appliance.platform.metrics import JUDGEMENTS, agent_file, find_calls
from parley.appliance.cli.agent import DEFAULT_AGENT, open_store, saved_version, saved_versions

DEFAULT_LIMIT = 50
NOTHING = "–"
MARKS = {"success": "[green]✓[/]", "failure": "[red]✗[/]", "unknown": "[yellow]?[/]"}


def register(commands):
    parser = commands.add_parser("calls", help="find calls by criterion judgement, tool errors or collected data")
    parser.add_argument("agent", nargs="?", default=DEFAULT_AGENT, metavar="AGENT", help="default: acme")
    parser.add_argument("--where", action="append", default=[], metavar="criterion=ID:RESULT",
                        help="the criterion was judged RESULT (success, failure, unknown); repeatable")
    parser.add_argument("--tool-errored", action="store_true", help="a tool call ended in error")
    parser.add_argument("--version", metavar="vN", help="only calls served by this version (vN, N or latest)")
    parser.add_argument("--data", action="append", default=[], metavar="FIELD=VALUE",
                        help="the call collected FIELD with this value (case-insensitive); repeatable")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                        help=f"show the N newest matching calls (default: {DEFAULT_LIMIT})")
    parser.set_defaults(run=run)


def run(args):
    from parley.appliance.cli import UserError

    if args.limit < 1:
        raise UserError(f"--limit must be at least 1, not {args.limit}")
    with open_store() as store:
        versions, number = saved_versions(store, args.agent), None
        if args.version is not None:
            version = saved_version(store, args.agent, args.version)
            versions, number = [version], version.number
        files = [agent_file(version.content) for version in versions]
        where = [_judgement(text, _declared(files, "evaluation_criteria")) for text in args.where]
        data = [_datum(text, _declared(files, "data_collection")) for text in args.data]
        calls = find_calls(store, agent=args.agent, version=number, where=where, tool_errored=args.tool_errored,
                           data=data, limit=args.limit + 1)
    console = Console(highlight=False)
    if not calls:
        console.print(f"no call of agent {escape(args.agent)} matches")
        return 0
    table = Table(title=f"calls of agent {escape(args.agent)}, newest first")
    for column in ("call", "version", "started (UTC)", "outcome", "duration", "turns", "handed off", "criteria"):
        table.add_column(column, no_wrap=column == "call",
                         justify="right" if column in ("duration", "turns") else "left")
    for call in calls[:args.limit]:
        table.add_row(call.id, f"v{call.version}", call.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                      call.outcome or "in progress", NOTHING if call.duration_s is None else f"{call.duration_s:.1f} s",
                      str(call.turns), "yes" if call.handed_off else "no",
                      "\n".join(f"{MARKS[result]} {escape(criterion)}" for criterion, result in call.criteria.items()))
    console.print(table)
    if len(calls) > args.limit:
        console.print(f"more calls match: these are the newest {args.limit} (raise --limit to see more)")
    return 0


def _judgement(text, criteria):
    """``criterion=ID:RESULT`` as (ID, RESULT), or a UserError saying what is wrong."""
    from parley.appliance.cli import UserError

    key, _, judged = text.partition("=")
    criterion, _, result = judged.rpartition(":")
    if key != "criterion" or not criterion or result not in JUDGEMENTS:
        raise UserError(f"--where {text!r}: give criterion=ID:RESULT with RESULT one of {', '.join(JUDGEMENTS)}, "
                        f"e.g. criterion=resolved:failure")
    if criterion not in criteria:
        raise UserError(f"--where {text!r}: no evaluation criterion {criterion!r}; "
                        f"known: {', '.join(criteria) or 'none'}")
    return criterion, result


def _datum(text, fields):
    """``FIELD=VALUE`` as (FIELD, VALUE), or a UserError saying what is wrong."""
    from parley.appliance.cli import UserError

    field, equals, value = text.partition("=")
    if not field or not equals:
        raise UserError(f"--data {text!r}: give FIELD=VALUE, e.g. order_id=A1001")
    if field not in fields:
        raise UserError(f"--data {text!r}: no data-collection field {field!r}; known: {', '.join(fields) or 'none'}")
    return field, value


def _declared(files, part):
    """The ids of ``part`` (evaluation_criteria, data_collection) across these agent files, sorted."""
    return sorted({item["id"] for agent in files for item in agent.get(part) or ()
                   if isinstance(item, dict) and "id" in item})
