"""`parley judge-check [--model NAME ...] [--set PATH] [--limit N]`: how far each LLM judge agrees
with a person on transcripts whose verdict is known (by default Acme's labelled set).

For each model: agreement with its 95 % Wilson interval, Cohen's kappa, the two kinds of error
(a pass judged fail, a fail judged pass), seconds per item, and every disagreement with the
judge's rationale beside the person's reason. The default model is the Acme agent's own.
"""

import hashlib
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from parley.appliance.platform.testing.judge_check import ERROR, JUDGE_SET, JudgeSetError, check, load_judge_set
from parley.appliance.config import load_settings


def register(commands):
    parser = commands.add_parser("judge-check", help="measure how far an LLM judge agrees with labelled transcripts")
    parser.add_argument("--model", action="append", metavar="NAME",
                        help="a model folder under models/ holding a .gguf (repeatable; default: the Acme agent's)")
    parser.add_argument("--set", type=Path, default=JUDGE_SET, metavar="PATH",
                        help="the labelled transcripts (default: Acme's judge_set.yaml)")
    parser.add_argument("--limit", type=int, metavar="N", help="judge only the first N items")
    parser.set_defaults(run=run)


def run(args):
    """Judge the set with each model; a full run (no --limit) is stored for the go-live gate."""
    from parley.appliance.agent.config import load_agent
    from parley.appliance.agent.llm import LlamaEngine
    from parley.appliance.agent.worker import agent_variables
    from parley.appliance.cli import UserError
    from parley.appliance.demo import ACME_DIR

    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    settings = load_settings()
    agent = load_agent(ACME_DIR, variables=agent_variables(settings))
    try:
        items = load_judge_set(args.set, {c.id: c.description for c in agent.evaluation_criteria})
    except JudgeSetError as exc:
        raise UserError(str(exc)) from None
    items = items[:args.limit]
    models = model_files(settings.models_dir, args.model or [agent.llm.model])
    console = Console()
    set_sha256 = hashlib.sha256(Path(args.set).read_bytes()).hexdigest()
    for name, path in models.items():
        with console.status(f"loading {escape(name)}"):
            engine = LlamaEngine(path)
        agreement = judge_with(console, name, engine, items)
        report(console, name, agreement)
        if args.limit is None:
            from parley.appliance.platform.gate import record_judge_check
            from parley.appliance.store import Store

            with Store.open(settings.db_path) as store:
                record_judge_check(store, name, agreement.rate.passed, agreement.rate.total, agreement.kappa, set_sha256)
    return 0


def model_files(models_dir, names):
    """Model name -> its .gguf, every one checked before the first (slow) load."""
    from parley.appliance.agent.llm import find_model_file
    from parley.appliance.cli import UserError

    files = {}
    for name in names:
        try:
            files[name] = find_model_file(models_dir, name)
        except FileNotFoundError:
            raise UserError(f"{models_dir / name} has no .gguf model: "
                            f"run `parley models fetch --only {name}`") from None
    return files


def judge_with(console, name, engine, items):
    from parley.appliance.platform.testing.judge import Judge

    judge = Judge(engine)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(escape(name), total=len(items))
        return check(judge, items, progress=lambda judgement: progress.advance(task))


def report(console, name, agreement):
    confusion = agreement.confusion
    table = Table(title=f"judge {escape(name)}", show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = (("items", str(len(agreement.judgements))),
            ("agreement", str(agreement.rate)),
            ("Cohen's kappa", f"{agreement.kappa:.2f}"),
            ("pass judged fail", str(confusion["pass", "fail"])),
            ("fail judged pass", str(confusion["fail", "pass"])),
            ("unknown", str(sum(n for (_, got), n in confusion.items() if got == "unknown"))),
            ("reply unreadable", str(sum(n for (_, got), n in confusion.items() if got == ERROR))),
            ("s/item", f"{agreement.seconds_per_item:.1f}"))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if not agreement.disagreements:
        console.print(f"[green]✓[/] {escape(name)} agrees on every item")
        return
    table = Table(title=f"where {escape(name)} disagrees")
    for column in ("id", "expected", "got", "judge's rationale", "why (expected)"):
        table.add_column(column)
    for judgement in agreement.disagreements:
        table.add_row(escape(judgement.item.id), judgement.item.verdict, judgement.got,
                      escape(judgement.rationale), escape(judgement.item.why))
    console.print(table)
