"""`parley serve`: the appliance on the phone line. Starts the workers, then answers SIP calls on
``bind_host:sip_port`` (loopback unless configured) until Ctrl-C; each call is a normal Parley
call, stored and traced like any other. Settings: ``[sip]`` in parley.toml (see
``parley.appliance.media.sip.config``), overridden by the options here."""

import asyncio
import signal
from pathlib import Path

from rich.console import Console

from parley.appliance.cli import logs
from parley.appliance.config import load_settings
from parley.appliance.demo import ACME_DIR
from parley.appliance.media.placer import CallPlacer
from parley.appliance.media.sip.config import load_sip_settings
from parley.appliance.media.sip.server import SipServer
from parley.appliance.services import ServicePlan, Services


def register(commands):
    parser = commands.add_parser("serve", help="answer SIP calls with an agent")
    parser.add_argument("--agent", type=Path, default=ACME_DIR, help="the agent folder (default: the Acme demo)")
    parser.add_argument("--port", type=int, help="SIP port (default: [appliance] sip_port, 5060)")
    parser.add_argument("--max-calls", type=int, help="calls at once; one more hears busy (486)")
    parser.add_argument("--transfer-to", dest="transfer_target", help="extension or SIP URI for hand-offs")
    parser.add_argument("--verbose", action="store_true")
    parser.set_defaults(run=run)


def run(args):
    console = Console()
    logs.configure(args.verbose)
    settings = load_settings()
    sip, media = load_sip_settings(settings, port=args.port, max_calls=args.max_calls,
                                   transfer_target=args.transfer_target)
    with console.status("starting the workers"):
        services = Services(ServicePlan(str(args.agent)), settings=settings).start()
    try:
        with CallPlacer(services, args.agent) as placer:
            server = SipServer(sip, lambda caller, codec: placer.session(channel="sip", caller=caller, codec=codec),
                               media=media)
            console.print(f"[bold]answering[/] sip:{sip.user}@{sip.host}:{sip.port} with {placer.agent.name} "
                          f"(up to {sip.max_calls} calls); Ctrl-C stops")
            asyncio.run(_serve(server))
    finally:
        services.stop()
    console.print(f"{server.calls_finished} calls answered")
    return 0


async def _serve(server):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.serve(stop)
