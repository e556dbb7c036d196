"""`parley metrics`: how an agent's versions do on real calls, one row per version or per version and day.

    parley metrics [AGENT] [--version vN] [--since YYYY-MM-DD] [--by version|day]

AGENT is a saved agent's name (default `acme`). Rates show their 95 % Wilson interval and count;
`–` marks a figure with nothing to measure. Only ended calls are measured; the definitions are in
parley.appliance.platform.metrics.
"""

from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from parley.appliance.platform.metrics import agent_metrics
from parley.appliance.cli.agent import DEFAULT_AGENT, open_store, saved_version, saved_versions

NOTHING = "–"
COLUMNS = ("version", "day", "calls", "ended", "task completion", "escalation", "handle time", "turns / call",
           "interruptions / call", "voice-to-voice p50 / p95", "tool errors")


def register(commands):
    parser = commands.add_parser("metrics", help="task completion, escalation, handle time, latency … per version")
    parser.add_argument("agent", nargs="?", default=DEFAULT_AGENT, metavar="AGENT", help="default: acme")
    parser.add_argument("--version", metavar="vN", help="only this version (vN, N or latest)")
    parser.add_argument("--since", metavar="YYYY-MM-DD", help="only calls started on or after this UTC date")
    parser.add_argument("--by", choices=("version", "day"), default="version",
                        help="one row per version (default), or per version and UTC day")
    parser.set_defaults(run=run)


def run(args):
    since = _date(args.since) if args.since is not None else None
    by_day = args.by == "day"
    with open_store() as store:
        saved_versions(store, args.agent)
        number = saved_version(store, args.agent, args.version).number if args.version is not None else None
        rows = agent_metrics(store, args.agent, version=number, since=since, by_day=by_day)
    console = Console(highlight=False)
    scope = f" v{number}" if number is not None else ""
    if since is not None:
        scope += f" since {since}"
    if not rows:
        console.print(f"agent {escape(args.agent)}{scope}: no calls to measure")
        return 0
    table = Table(title=f"agent {escape(args.agent)}{scope}: calls by {args.by}")
    for column in COLUMNS:
        if column != "day" or by_day:
            table.add_column(column, justify="left" if column in ("version", "day") else "right")
    for row in rows:
        cells = [f"v{row.version}", str(row.calls), str(row.ended), _completion(row), str(row.escalation),
                 _number(row.handle_time_s, "{:.1f} s"), _number(row.turns_per_call, "{:.2f}"),
                 _number(row.interruptions_per_call, "{:.2f}"), _latency(row.latency), str(row.tool_errors)]
        if by_day:
            cells.insert(1, row.day.isoformat())
        table.add_row(*cells)
    console.print(table)
    return 0


def _date(text):
    from parley.appliance.cli import UserError

    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise UserError(f"--since {text!r} is not a date: give YYYY-MM-DD, e.g. 2025-03-01") from None


def _completion(row):
    if row.completion_criterion is None:
        return f"{NOTHING} (no quality.completion_criterion)"
    lines = [f"{escape(row.completion_criterion)}: {row.completion}"]
    left_out = [f"{count} {what}" for count, what in ((row.completion_unknown, "unknown"),
                                                       (row.completion_unjudged, "not judged")) if count]
    if left_out:
        lines.append(f"({', '.join(left_out)})")
    return "\n".join(lines)


def _number(value, form):
    return NOTHING if value is None else form.format(value)


def _latency(latency):
    if not latency.turns:
        return NOTHING
    return f"{latency.p50_ms:.0f} / {latency.p95_ms:.0f} ms ({latency.turns} turns)"
