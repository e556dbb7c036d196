"""`parley agent push | versions | show | diff | gate`: save an agent folder as a version, list, read and
compare versions, and decide whether one may go live.

A version that lowers the bar (a criterion or a test removed, a threshold lowered) is saved only
with `--reason`; `diff` lists such changes first, in red. Versions are named `vN`, `N` or `latest`.
"""

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from parley.appliance.platform.versions import BarLoweredError, ChangeKind, diff, find_version, push
from parley.appliance.config import load_settings
from parley.appliance.demo import ACME_DIR
from parley.appliance.store import Store

DEFAULT_AGENT = "acme"
"""The agent `versions`, `show` and `diff` read when none is named: the embedded demo."""
HASH_PREFIX = 12
DIFF_COLOURS = {"+": "green", "-": "red", "@": "cyan"}


def register(commands):
    parser = commands.add_parser("agent", help="save agent versions, list, show and compare them")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    pushing = verbs.add_parser("push", help="save an agent folder as the agent's next version")
    pushing.add_argument("folder", metavar="FOLDER", help="the agent folder (holding agent.yaml); `acme` for the demo")
    pushing.add_argument("-m", "--message", required=True, help="what changed and why")
    pushing.add_argument("--reason", help="why a version that lowers the bar (criterion, test, threshold) is fine")
    pushing.add_argument("--author", help="who made the change (default: your login)")
    pushing.set_defaults(run=run_push)

    listing = verbs.add_parser("versions", help="list an agent's saved versions")
    listing.add_argument("agent", nargs="?", default=DEFAULT_AGENT, metavar="AGENT", help="default: acme")
    listing.set_defaults(run=run_versions)

    showing = verbs.add_parser("show", help="one version: who saved it, why, and its files")
    showing.add_argument("agent", nargs="?", default=DEFAULT_AGENT, metavar="AGENT", help="default: acme")
    showing.add_argument("version", metavar="VERSION", help="vN, N or latest")
    showing.add_argument("--file", metavar="PATH", help="print this file of the version (e.g. agent.yaml)")
    showing.set_defaults(run=run_show)

    comparing = verbs.add_parser("diff", help="what changed between two versions, bar-lowering changes first")
    comparing.add_argument("agent", nargs="?", default=DEFAULT_AGENT, metavar="AGENT", help="default: acme")
    comparing.add_argument("old", metavar="OLD", help="vN, N or latest")
    comparing.add_argument("new", metavar="NEW", help="vN, N or latest")
    comparing.set_defaults(run=run_diff)

    gating = verbs.add_parser("gate", help="go-live gate: test pass rates and call criteria against the agent's bars")
    gating.add_argument("agent", nargs="?", default=DEFAULT_AGENT, metavar="AGENT", help="default: acme")
    gating.add_argument("version", metavar="VERSION", help="vN, N or latest")
    gating.set_defaults(run=run_gate)


def run_push(args):
    from parley.appliance.cli import UserError

    folder = ACME_DIR if args.folder == "acme" else Path(args.folder)
    with open_store() as store:
        try:
            version, created = push(store, folder, args.message, author=args.author, reason=args.reason)
        except BarLoweredError as exc:
            raise UserError(str(exc)) from None
        versions = store.agent_versions(version.agent)
    console = Console(highlight=False)
    if not created:
        latest = "" if versions[-1].number == version.number else f" (the latest is v{versions[-1].number})"
        console.print(f"agent {escape(version.agent)}: nothing to save, this content is v{version.number}{latest}")
        return 0
    console.print(f"[green]✓[/] agent {escape(version.agent)} v{version.number} saved "
                  f"({version.content_hash[:HASH_PREFIX]}): {escape(version.message)}")
    if version.lowered_bar_reason is not None:
        for item in diff(versions[-2].content, version.content).bar_lowered:
            console.print(f"[red]bar lowered[/]: {escape(item)}")
        console.print(f"accepted because: {escape(version.lowered_bar_reason)}")
    elif args.reason:
        console.print("[yellow]--reason was not kept[/]: this version lowers no bar")
    return 0


def run_versions(args):
    with open_store() as store:
        versions = saved_versions(store, args.agent)
    table = Table(title=f"versions of agent {args.agent}")
    for column in ("version", "created", "author", "message", "hash", "lowered the bar because"):
        table.add_column(column)
    for version in versions:
        table.add_row(f"v{version.number}", _local_time(version.created_at), escape(version.author),
                      escape(version.message), version.content_hash[:HASH_PREFIX],
                      escape(version.lowered_bar_reason or ""))
    Console(highlight=False).print(table)
    return 0


def run_show(args):
    from parley.appliance.cli import UserError

    with open_store() as store:
        version = saved_version(store, args.agent, args.version)
    files = version.content["files"]
    if args.file is not None:
        if args.file not in files:
            raise UserError(f"v{version.number} of agent {args.agent} has no file {args.file}; "
                            f"its files: {', '.join(files)}")
        print(files[args.file], end="")
        return 0
    console = Console(highlight=False)
    console.print(f"[bold]agent {escape(version.agent)} v{version.number}[/]  {version.content_hash}")
    console.print(f"saved {_local_time(version.created_at)} by {escape(version.author)}: {escape(version.message)}")
    if version.lowered_bar_reason is not None:
        console.print(f"[red]lowered the bar[/] because: {escape(version.lowered_bar_reason)}")
    table = Table(title=f"{len(files)} files")
    table.add_column("file")
    table.add_column("lines", justify="right")
    for path, text in files.items():
        table.add_row(escape(path), str(len(text.splitlines())))
    console.print(table)
    return 0


def run_gate(args):
    from parley.appliance.platform.gate import gate

    with open_store() as store:
        verdict = gate(store, saved_version(store, args.agent, args.version))
    console = Console(highlight=False)
    table = Table(title=f"go-live gate: {args.agent} v{verdict.version}")
    for column in ("bar", "threshold", "measured [95% CI]", "verdict"):
        table.add_column(column)
    colours = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    for bar in verdict.bars:
        more = ""
        if bar.verdict == "inconclusive":
            more = (f": about {bar.more_needed} more {bar.unit} at this rate would decide" if bar.more_needed
                    else f": no number of {bar.unit} at this rate decides" if bar.total else f": no {bar.unit} yet")
        advisory = " [dim](advisory: judge not proven)[/]" if bar.advisory else ""
        table.add_row(escape(bar.name), f"{bar.threshold:.0%}", str(bar.rate),
                      f"[{colours[bar.verdict]}]{bar.verdict}[/]{escape(more)}{advisory}")
    console.print(table)
    for note in verdict.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(f"verdict: [bold {colours[verdict.verdict]}]{verdict.verdict}[/] (stored)")
    return {"pass": 0, "fail": 1, "inconclusive": 3}[verdict.verdict]


def run_diff(args):
    with open_store() as store:
        old = saved_version(store, args.agent, args.old)
        new = saved_version(store, args.agent, args.new)
    changes = diff(old.content, new.content)
    console = Console(highlight=False)
    console.print(f"[bold]agent {escape(args.agent)}: v{old.number} → v{new.number}[/]")
    for item in changes.bar_lowered:
        console.print(f"[bold red]bar lowered: {escape(item)}[/]")
    if changes.bar_lowered and new.lowered_bar_reason is not None:
        console.print(f"v{new.number} was accepted because: {escape(new.lowered_bar_reason)}")
    if changes.empty:
        same = old.content_hash == new.content_hash
        console.print("the same content" if same else "no part of the agent differs, only comments or layout")
        return 0
    for title, part in changes.parts():
        if part:
            console.print(f"\n[bold]{title}[/]")
            for change in part:
                print_change(console, change)
    return 0


def print_change(console, change):
    name = escape(change.name)
    if change.kind is ChangeKind.ADDED:
        console.print(f"  [green]+ {name}[/]{_inline(change.new, ': ')}")
    elif change.kind is ChangeKind.REMOVED:
        console.print(f"  [red]- {name}[/]{_inline(change.old, ': ')}")
    elif change.text_diff:
        console.print(f"  [yellow]~ {name}[/]")
        for line in change.text_diff.splitlines():
            colour = DIFF_COLOURS.get(line[:1]) if not line.startswith(("---", "+++")) else "bold"
            console.print(f"      [{colour}]{escape(line)}[/]" if colour else f"      {escape(line)}")
    else:
        console.print(f"  [yellow]~ {name}[/]: {escape(str(change.old))} → {escape(str(change.new))}")


def open_store():
    return Store.open(load_settings().db_path)


def saved_versions(store, agent):
    """Every version of ``agent``, or a UserError naming the agents there are."""
    from parley.appliance.cli import UserError

    try:
        return store.agent_versions(agent)
    except LookupError as exc:
        raise UserError(f"{exc}; save one with `parley agent push FOLDER -m MESSAGE`") from None


def saved_version(store, agent, ref):
    """Version ``ref`` of ``agent``, or a UserError saying which agents or versions there are."""
    from parley.appliance.cli import UserError

    try:
        return find_version(store, agent, ref)
    except LookupError as exc:
        raise UserError(str(exc)) from None


def _inline(value, prefix):
    """``value`` after ``prefix`` when it fits on the line (a number, a short text), else nothing."""
    text = str(value)
    if isinstance(value, (dict, list)) or "\n" in text.strip() or len(text) > 80:
        return ""
    return escape(f"{prefix}{text}")


def _local_time(moment):
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
