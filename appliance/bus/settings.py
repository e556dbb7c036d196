"""Where the bus listens and how patient it is.

Endpoints come from the appliance settings (``bus_transport``, ``run_dir``, ``bind_host``,
``bus_base_port``); the timing defaults below sit next to the setting they govern.
"""

from dataclasses import dataclass
from pathlib import Path

import zmq

from parley.appliance.config import ConfigError, load_settings

IPC_PATH_LIMIT = 107
"""AF_UNIX ``sun_path`` holds 108 bytes including the terminating NUL."""


class EndpointError(ConfigError):
    """A bus endpoint cannot be used as configured; the message says what to change."""


@dataclass(frozen=True)
class BusEndpoints:
    """The four sockets of one appliance's bus; each string is a ZeroMQ endpoint.

    The same strings serve to bind (router, hub) and to connect (workers, clients, publishers,
    subscribers); a tcp endpoint with port ``*`` binds to a free port, which
    ``WorkerRouter.endpoints`` then reports resolved.
    """

    workers: str
    """The router's ROUTER socket that workers' DEALERs connect to."""
    clients: str
    """The router's ROUTER socket that BusClients connect to."""
    events_in: str
    """The event hub's XSUB socket that EventPublishers connect to."""
    events_out: str
    """The event hub's XPUB socket that EventSubscribers connect to."""

    @classmethod
    def from_settings(cls, settings=None):
        settings = settings or load_settings()
        if settings.bus_transport == "tcp":
            return cls.tcp(settings.bind_host, settings.bus_base_port)
        return cls.ipc(settings.run_dir)

    @classmethod
    def ipc(cls, run_dir):
        """Unix sockets under ``run_dir`` (created, owner-only), checked against the path limit."""
        run_dir = Path(run_dir)
        endpoints = cls(*(f"ipc://{run_dir / name}.sock" for name in ("workers", "clients", "events-in", "events-out")))
        for endpoint in (endpoints.workers, endpoints.clients, endpoints.events_in, endpoints.events_out):
            path = endpoint.removeprefix("ipc://")
            if len(path.encode()) > IPC_PATH_LIMIT:
                raise EndpointError(
                    f"bus socket path {path} is {len(path.encode())} bytes; Unix sockets allow {IPC_PATH_LIMIT}: "
                    "set a shorter var_dir in parley.toml's [appliance] section, or bus_transport = \"tcp\""
                )
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return endpoints

    @classmethod
    def tcp(cls, host, base_port):
        """Four consecutive ports from ``base_port`` on ``host`` (loopback unless configured)."""
        if not 0 < base_port <= 65535 - 3:
            raise EndpointError(f"bus_base_port must leave room for 4 ports below 65536, got {base_port}")
        return cls(*(f"tcp://{host}:{base_port + i}" for i in range(4)))


def bind(socket, endpoint):
    """Bind ``socket`` and return the endpoint it got (a wildcard tcp port resolved)."""
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as exc:
        raise EndpointError(
            f"cannot listen on {endpoint}: {zmq.strerror(exc.errno)}; is another `parley serve` running? "
            "If not, change var_dir or bus_base_port in parley.toml"
        ) from None
    return socket.getsockopt_string(zmq.LAST_ENDPOINT)


@dataclass(frozen=True)
class BusTiming:
    """How often workers speak up, how long silence is tolerated, and how restarts back off."""

    heartbeat_interval: float = 1.0
    """Seconds between a worker's heartbeats (sent also while a handler runs)."""
    heartbeat_liveness: int = 3
    """A worker that misses this many intervals in a row is declared dead."""
    failover_attempts: int = 1
    """How many times a retryable job is moved to another worker after its worker died."""
    request_timeout: float = 10.0
    """Seconds a client waits for the next reply (and a queued job for a free worker)."""
    restart_backoff: float = 0.5
    """Delay before restarting a worker process that exited; doubles per recent exit."""
    restart_backoff_max: float = 30.0
    restart_limit: int = 5
    """More exits than this within ``restart_window`` seconds is a crash loop: the slot stays down."""
    restart_window: float = 60.0
    stop_grace: float = 3.0
    """Seconds a worker gets to exit after ``shutdown`` before it is killed."""

    def __post_init__(self):
        if self.heartbeat_interval <= 0 or self.heartbeat_liveness < 1:
            raise ConfigError(
                f"heartbeat_interval must be > 0 and heartbeat_liveness >= 1, got {self.heartbeat_interval} and {self.heartbeat_liveness}"
            )
