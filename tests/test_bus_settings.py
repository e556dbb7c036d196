"""Where the bus listens: ipc under the run directory by default, tcp on loopback if asked."""

import stat

import pytest

from parley.appliance.bus import BusEndpoints, EndpointError, WorkerRouter
from parley.appliance.config import Settings


def test_ipc_endpoints_live_in_the_run_directory_which_is_created_owner_only(tmp_path):
    endpoints = BusEndpoints.from_settings(Settings(home=tmp_path))
    run_dir = tmp_path / "var" / "run"
    assert endpoints.workers == f"ipc://{run_dir}/workers.sock"
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700


def test_a_run_directory_too_long_for_unix_sockets_is_refused_with_the_fix(tmp_path):
    too_deep = tmp_path / ("d" * 100)
    with pytest.raises(EndpointError, match=r"Unix sockets allow 107: set a shorter var_dir .* or bus_transport = \"tcp\""):
        BusEndpoints.ipc(too_deep)
    assert not too_deep.exists()


def test_tcp_endpoints_bind_to_loopback_on_consecutive_ports_by_default(tmp_path):
    endpoints = BusEndpoints.from_settings(Settings(home=tmp_path, bus_transport="tcp"))
    assert endpoints == BusEndpoints("tcp://127.0.0.1:5570", "tcp://127.0.0.1:5571", "tcp://127.0.0.1:5572", "tcp://127.0.0.1:5573")


def test_a_taken_endpoint_is_reported_with_what_to_check():
    endpoints = BusEndpoints(*["tcp://127.0.0.1:*"] * 4)
    with WorkerRouter(endpoints) as first:
        taken = BusEndpoints(first.endpoints.workers, "tcp://127.0.0.1:*", "", "")
        with pytest.raises(EndpointError, match=r"cannot listen on tcp://127.0.0.1:\d+: Address already in use; is another `parley serve`"):
            WorkerRouter(taken).start()
