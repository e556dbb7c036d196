"""One `parley test` session: the agent (its folder now, or a stored version written back out),
its tests, one model load, and every run of every test stored as it ends."""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from parley.appliance.agent.config import load_agent
from parley.appliance.agent.llm import all_tools
from parley.appliance.platform.testing import results
from parley.appliance.platform.testing.suite import load_tests
from parley.appliance.platform.versions import current_version


@dataclass
class AgentUnderTest:
    config: object
    version: object
    """records.AgentVersion: the version the results are stored against."""
    folder: Path


def agent_under_test(store, folder, variables, *, version=None, workdir):
    """The agent in ``folder`` as it is now (saved as a version if this content is new), or the
    stored ``version`` (an AgentVersion) written out under ``workdir``, loaded with ``variables``."""
    if version is None:
        config = load_agent(folder, variables=variables)
        version = current_version(store, config.name, folder, message="saved when first tested")
    else:
        folder = Path(workdir) / f"{version.agent}-v{version.number}"
        for relative, text in version.content["files"].items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        config = load_agent(folder, variables=variables)
    return AgentUnderTest(config, version, Path(folder))


def tests_of(agent, files=(), *, only=None, tag=None):
    """The agent's tests (its tests/ folder, or ``files``), filtered by id and tag."""
    paths = list(files) or [agent.folder / "tests"]
    tests = load_tests(paths, tools={t.name for t in all_tools(agent.config)})
    if only:
        tests = [t for t in tests if t.id in only]
        missing = set(only) - {t.id for t in tests}
        if missing:
            raise LookupError(f"no test with id {', '.join(sorted(missing))}")
    if tag:
        tests = [t for t in tests if tag in t.tags]
    return tests


def runs_for(test, agent, runs):
    """How many runs a test gets: ``--runs``, else the test's own, else the agent's default. A
    greedy agent (temperature 0) replies the same every run, so it gets one run, not a false
    interval over copies of one sample."""
    wanted = runs or test.runs or agent.config.testing.runs
    return 1 if agent.config.llm.temperature == 0 and test.kind != "simulation" else wanted


def run_suite(store, agent, runner, tests, *, runs=None, progress=None, settings=None):
    """Run every test its number of times, storing each result as it ends; returns (run id, summary)."""
    run_id = results.start_run(store, agent.version, {"runs": runs, "tests": [t.id for t in tests], **(settings or {})})
    for test in tests:
        for run in range(1, runs_for(test, agent, runs) + 1):
            outcome = runner.run(test, run, seed=run)
            results.record(store, run_id, test, outcome)
            if progress is not None:
                progress(test, outcome)
    summary = results.summarize(results.results(store, run_id), agent.config.quality)
    results.finish_run(store, run_id, summary.verdict)
    return run_id, summary


def scratch_variables(settings):
    """Agent variables for tests: ``{var}`` points at a scratch folder, so tests never touch the
    appliance's live data (the Acme shop the demo calls use)."""
    from parley.appliance.agent.worker import agent_variables

    settings.var_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="test-", dir=settings.var_dir))
    return {**agent_variables(settings), "var": str(scratch)}, scratch
