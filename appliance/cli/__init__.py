"""The `parley` command: one module per noun, each adding its sub-commands here."""

import argparse

from rich.console import Console
from rich.markup import escape

from parley.appliance.cli import (agent, analyze, call, calls, demo, doctor, judge_check, metrics, models, serve, test,
                                  voices)


class UserError(Exception):
    """A problem the user can fix; printed as one message, no traceback."""


NOUNS = (models, doctor, voices, demo, call, serve, agent, test, analyze, calls, metrics, judge_check)


def build_parser():
    parser = argparse.ArgumentParser(prog="parley", description="Parley: a self-contained voice-agent appliance.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for noun in NOUNS:
        noun.register(commands)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]; what was done is kept, run the command again to resume")
        return 130
    except Exception as exc:
        if not any(isinstance(exc, kind) for kind in _user_errors()):
            raise
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2


def _user_errors():
    from parley.appliance.agent.config import AgentFileError
    from parley.appliance.platform.testing.suite import TestFileError
    from parley.appliance.config import ConfigError
    from parley.appliance.media.file_channel import CallerAudioError
    from parley.appliance.media.local_audio import LocalAudioError
    from parley.appliance.services import ServicesNotReady
    from parley.appliance.models.fetch import FetchError
    from parley.appliance.models.manifest import ManifestError

    return (UserError, ConfigError, FetchError, ManifestError, AgentFileError, TestFileError, CallerAudioError,
            LocalAudioError, ServicesNotReady)
