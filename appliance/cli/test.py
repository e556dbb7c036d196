"""`parley test`: run an agent's tests through the real model and store the results.

    parley test [AGENT] [--version vN] [--runs N] [--only ID] [--tag T] [--file PATH]
    parley test [AGENT] --compare vA vB
    parley test from-call CALL_ID --turn K [--out PATH]

AGENT is an agent folder, or `acme` (the default) for the embedded demo. Each test runs its
number of times; the table shows its pass rate with a 95 % Wilson interval, flaky tests (passed
and failed), failures grouped by reason, and rates per kind and tag. Exits 1 when the suite
misses the agent's quality bars (or, with --compare, when a regression is significant).
"""

import shutil
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from parley.appliance.platform.testing import results
from parley.appliance.platform.testing.suite import mostly_happy, tag_coverage
from parley.appliance.config import load_settings
from parley.appliance.demo import ACME_DIR
from parley.appliance.store import Store


def register(commands):
    parser = commands.add_parser("test", help="run an agent's tests (pass rates, flaky tests), compare versions, "
                                              "or write a test from a call")
    parser.add_argument("target", nargs="*", metavar="AGENT | from-call CALL_ID",
                        help="an agent folder or `acme` (default); or `from-call CALL_ID` with --turn")
    parser.add_argument("--version", metavar="vN", help="test a saved version instead of the folder as it is")
    parser.add_argument("--runs", type=int, help="runs per test (default: the test's, else the agent's testing.runs)")
    parser.add_argument("--only", action="append", metavar="ID", help="run only this test (repeatable)")
    parser.add_argument("--tag", help="run only tests with this tag")
    parser.add_argument("--file", action="append", type=Path, metavar="PATH",
                        help="read tests from this file or folder instead of the agent's tests/ (repeatable)")
    parser.add_argument("--temperature", type=float, metavar="T",
                        help="sample the agent at T instead of its own temperature (each run its own seed): a "
                             "greedy agent's runs are copies of one reply; sampling probes how robust it is")
    parser.add_argument("--compare", nargs=2, metavar=("vA", "vB"),
                        help="compare the pass rates of two versions (their latest stored runs; run now if none)")
    parser.add_argument("--turn", type=int, help="with from-call: the agent turn to test (its position, from 0)")
    parser.add_argument("--out", type=Path, help="with from-call: where to write the test (default: print it)")
    parser.set_defaults(run=run)


def run(args):
    from parley.appliance.cli import UserError

    if args.target[:1] == ["from-call"]:
        if len(args.target) != 2 or args.turn is None:
            raise UserError("usage: parley test from-call CALL_ID --turn K")
        return write_from_call(args.target[1], args.turn, args.out)
    if len(args.target) > 1:
        raise UserError("give one agent folder (or `acme`)")
    folder = ACME_DIR if not args.target or args.target[0] == "acme" else Path(args.target[0])
    if args.runs is not None and not 1 <= args.runs <= 100:
        raise UserError("--runs must be between 1 and 100")
    if args.compare:
        return compare_versions(folder, args)
    with Suite(folder, args) as suite:
        return suite.run_and_report(args.version)


class Suite:
    """The model loaded once, the store open, a scratch folder for the tools' data."""

    def __init__(self, folder, args):
        self.folder, self.args = folder, args
        self.settings = load_settings()
        self.console = Console()
        self.store = None
        self.engines = {}
        self.services = None

    def __enter__(self):
        from parley.appliance.platform.testing.session import scratch_variables

        self.store = Store.open(self.settings.db_path)
        self.variables, self.scratch = scratch_variables(self.settings)
        return self

    def __exit__(self, *exc):
        if self.services is not None:
            self.services.stop()
        self.store.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def placer(self, agent):
        """The appliance's workers on scratch data, for audio simulations (started once)."""
        from parley.appliance.media.placer import CallPlacer
        from parley.appliance.services import ServicePlan, Services

        if self.services is None:
            with self.console.status("starting the STT, TTS and agent workers for the audio simulations"):
                self.services = Services(ServicePlan(str(agent.folder)),
                                         settings=self.settings.with_var(self.scratch / "appliance")).start()
        return CallPlacer(self.services, agent.folder)

    def agent(self, version_ref):
        from parley.appliance.agent.config import load_agent
        from parley.appliance.platform.testing.session import agent_under_test
        from parley.appliance.platform.versions import find_version

        version = None
        if version_ref is not None:
            name = load_agent(self.folder, variables=self.variables).name
            try:
                version = find_version(self.store, name, version_ref)
            except LookupError as exc:
                from parley.appliance.cli import UserError

                raise UserError(str(exc)) from None
        return agent_under_test(self.store, self.folder, self.variables, version=version, workdir=self.scratch)

    def engine(self, model):
        from parley.appliance.agent.llm import LlamaEngine, find_model_file

        if model not in self.engines:
            with self.console.status(f"loading {model}"):
                self.engines[model] = LlamaEngine(find_model_file(self.settings.models_dir, model))
        return self.engines[model]

    def run_and_report(self, version_ref):
        summary, run_id, seconds, agent = self.run(version_ref)
        report(self.console, agent, summary, run_id, seconds)
        return 0 if summary.verdict == "passed" else 1

    def tests(self, agent):
        from parley.appliance.platform.testing.session import tests_of
        from parley.appliance.cli import UserError

        try:
            return tests_of(agent, self.args.file or (), only=self.args.only, tag=self.args.tag)
        except LookupError as exc:
            raise UserError(str(exc)) from None

    def run(self, version_ref):
        from parley.appliance.platform.testing.judge import Judge
        from parley.appliance.platform.testing.runner import TestRunner
        from parley.appliance.platform.testing.session import run_suite, runs_for

        agent = self.agent(version_ref)
        if self.args.temperature is not None:
            llm = replace(agent.config.llm, temperature=self.args.temperature)
            agent.config = replace(agent.config, llm=llm)
        tests = self.tests(agent)
        if not tests:
            from parley.appliance.cli import UserError

            raise UserError(f"no tests to run in {agent.folder / 'tests'} (or the files given) with these filters")
        engine = self.engine(agent.config.llm.model)
        judge_model = agent.config.testing.judge_model
        judge = Judge(self.engine(judge_model)) if judge_model else None
        placer = self.placer(agent) if any(t.mode == "audio" for t in tests) else None
        runner = TestRunner(agent.config, engine, judge=judge, placer=placer)
        total = sum(runs_for(t, agent, self.args.runs) for t in tests)
        started = time.monotonic()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(f"{agent.config.name} v{agent.version.number}", total=total)

            def advance(test, outcome):
                mark = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "error": "[yellow]![/]"}[outcome.status]
                progress.console.print(f"{mark} {escape(test.id)} run {outcome.run} ({outcome.seconds:.1f} s)"
                                       + (f": {escape(outcome.reasons[0])}" if outcome.reasons else ""), highlight=False)
                progress.advance(task)

            run_id, summary = run_suite(self.store, agent, runner, tests, runs=self.args.runs, progress=advance,
                                        settings={"model": agent.config.llm.model, "judge": judge_model,
                                                  "temperature": agent.config.llm.temperature})
        filtered = self.args.only or self.args.tag
        if mostly_happy(tests) and not filtered:
            self.console.print("[yellow]warning:[/] most of this suite is happy paths; add refusals, pivots, "
                               "ambiguous input and escalations")
        uncovered = [tag for tag, count in tag_coverage(tests).items() if not count]
        if uncovered and not filtered:
            self.console.print(f"[yellow]untested tags:[/] {', '.join(uncovered)}")
        return summary, run_id, time.monotonic() - started, agent


def report(console, agent, summary, run_id, seconds):
    table = Table(title=f"{agent.config.name} v{agent.version.number}: test run {run_id}")
    for column in ("test", "kind", "tags", "pass rate [95% CI]", "", "most frequent failure"):
        table.add_column(column)
    for test in sorted(summary.tests, key=lambda t: (t.rate.value, t.test_id)):
        flag = "[yellow]flaky[/]" if test.flaky else ("[red]errors[/]" if test.errors else "")
        reason = f"{test.reasons[0][1]}× {test.reasons[0][0]}" if test.reasons else ""
        colour = "green" if test.rate.passed == test.rate.total else "red" if not test.rate.passed else "yellow"
        table.add_row(escape(test.test_id), test.kind, ", ".join(test.tags), f"[{colour}]{test.rate}[/]", flag,
                      escape(reason[:110]))
    console.print(table)
    for title, rates in (("per kind", summary.by_kind), ("per tag", summary.by_tag)):
        console.print(f"[bold]{title}:[/] " + "; ".join(f"{name} {rate}" for name, rate in sorted(rates.items())))
    if summary.failure_groups:
        console.print("[bold]failures by reason:[/]")
        for reason, count in summary.failure_groups[:8]:
            console.print(f"  {count}× {escape(reason)}", highlight=False)
    flaky = [t.test_id for t in summary.tests if t.flaky]
    if flaky:
        console.print(f"[yellow]flaky ({len(flaky)}):[/] {', '.join(flaky)}")
    verdict = "[green]passed[/]" if summary.verdict == "passed" else "[red]failed[/]"
    console.print(f"overall {summary.overall}; suite {verdict} in {seconds:.0f} s"
                  + "".join(f"\n  {escape(why)}" for why in summary.why))


def compare_versions(folder, args):
    with Suite(folder, args) as suite:
        stored = []
        for ref in args.compare:
            agent = suite.agent(ref)
            tests = [t.id for t in suite.tests(agent)]
            temperature = args.temperature if args.temperature is not None else agent.config.llm.temperature
            run_id = results.latest_run(suite.store, agent.version,
                                        like={"runs": args.runs, "temperature": temperature, "tests": tests})
            if run_id is None:
                suite.console.print(f"v{agent.version.number} has no stored test run made this way: running its suite now")
                _, run_id, _, _ = suite.run(ref)
            stored.append((agent.version.number, run_id, results.results(suite.store, run_id)))
        (a_number, a_run, a), (b_number, b_run, b) = stored
        rows, overall = results.compare(a, b)
        table = Table(title=f"v{a_number} (run {a_run}) → v{b_number} (run {b_run}); two-sided Fisher exact test, "
                            f"significant at p < {results.SIGNIFICANCE}")
        for column in ("test", f"v{a_number}", f"v{b_number}", "change", "p", ""):
            table.add_column(column)
        for row in [*rows, overall]:
            mark = ("[red]regression[/]" if row.regression else "[green]improvement[/]") if row.significant else ""
            table.add_row(escape(row.test_id), str(row.a), str(row.b), f"{row.difference:+.0%}", f"{row.p_value:.3g}", mark)
        suite.console.print(table)
        only = sorted({r.test_id for r in a} ^ {r.test_id for r in b})
        if only:
            suite.console.print(f"not in both runs (not compared): {', '.join(only)}")
        return 1 if any(r.regression and r.significant for r in rows) else 0


def write_from_call(call_id, turn, out):
    from parley.appliance.platform.testing.from_call import FromCallError, test_from_call
    from parley.appliance.cli import UserError

    with Store.open(load_settings().db_path) as store:
        try:
            text = test_from_call(store, call_id, turn)
        except (FromCallError, LookupError) as exc:
            raise UserError(str(exc)) from None
    if out is None:
        print(text, end="")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        Console().print(f"[green]✓[/] test written to {escape(str(out))}; run it with `parley test --file {escape(str(out))}`")
    return 0
