"""`parley doctor`: a green/red table of what this machine has; non-zero exit when something is missing."""

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from parley.appliance.config import load_settings
from parley.appliance.doctor import FAIL, PASS, exit_code, run_checks
from parley.appliance.models.manifest import PURPOSES

MARKS = {PASS: "[green]✓ ok[/]", FAIL: "[bold red]✗ missing[/]", "warn": "[yellow]! note[/]"}


def register(commands):
    parser = commands.add_parser("doctor", help="check this machine: python, core, models, GPU, ports, store")
    parser.add_argument("--for", dest="purpose", choices=PURPOSES, default="demo",
                        help="whose models are required (default: demo, i.e. real use)")
    parser.set_defaults(run=run)


def run(args):
    settings = load_settings()
    checks = run_checks(settings, args.purpose)
    table = Table(title="parley doctor", show_lines=False)
    for column in ("area", "check", "status", "detail"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row(check.area, check.name, MARKS[check.status], escape(check.detail))
    console = Console()
    console.print(table)
    code = exit_code(checks)
    failed = sum(c.status == FAIL for c in checks)
    console.print("[green]ready[/]" if code == 0 else f"[red]{failed} check(s) failed[/]: see the detail column")
    return code
