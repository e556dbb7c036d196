"""A writer process killed with SIGKILL loses nothing it had committed, and leaves a usable file."""

import os
import random
import signal
import subprocess
import sys

from parley.appliance.store import Store

# Appends turns to one call, one transaction each, and reports every commit on stdout.
# Before commit number `hold` it opens a transaction, writes far more than its page cache
# holds (so uncommitted pages spill into the WAL), reports "holding" and waits to be killed.
WRITER = """
import sys
from parley.appliance.store import Store

path, hold = sys.argv[1], int(sys.argv[2])
store = Store.open(path)
store.db.execute("PRAGMA cache_size = 8")
version = store.save_agent_version("acme", {"name": "acme"}, author="crash test", message="v1")
call = store.start_call(version.id, "test")
print("call", call.id, flush=True)
n = 0
while True:
    if n == hold:
        with store.transaction():
            for _ in range(300):
                store.append_turn(call.id, "caller", "never committed " * 200)
            print("holding", flush=True)
            sys.stdin.readline()
    store.append_turn(call.id, "caller", f"row {n}")
    print("committed", n, flush=True)
    n += 1
"""

NEVER = -1


def start_writer(path, hold):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(hold)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    first_line = writer.stdout.readline()
    assert first_line.startswith("call "), f"the writer did not start (exit status {writer.wait()})"
    return writer, first_line.split()[1]


def kill(writer):
    """SIGKILL: no handler, no atexit, no flush. Returns the lines it printed that were not yet read."""
    os.kill(writer.pid, signal.SIGKILL)
    unread, _ = writer.communicate(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    return unread.splitlines()


def committed_rows(lines):
    return [f"row {line.split()[1]}" for line in lines if line.startswith("committed")]


def assert_usable(path, call_id):
    with Store.open(path) as store:
        assert [row["integrity_check"] for row in store.db.query("PRAGMA integrity_check")] == ["ok"]
        assert list(store.db.query("PRAGMA foreign_key_check")) == []
        store.append_turn(call_id, "agent", "written after the crash")
        store.end_call(call_id, "failed")


def stored_rows(path, call_id):
    with Store.open(path) as store:
        return [turn.text for turn in store.turns(call_id)]


def test_a_writer_killed_inside_a_transaction_keeps_every_commit_and_nothing_more(tmp_path):
    path = tmp_path / "parley.db"
    writer, call_id = start_writer(path, hold=40)
    lines = []
    while (line := writer.stdout.readline()) != "holding\n":
        assert line, f"the writer stopped early (exit status {writer.wait()})"
        lines.append(line)
    wal_size = (tmp_path / "parley.db-wal").stat().st_size

    kill(writer)

    assert wal_size > 500_000  # most of the ~960 kB the open transaction wrote is on disk, uncommitted
    assert committed_rows(lines) == [f"row {n}" for n in range(40)]
    assert stored_rows(path, call_id) == committed_rows(lines)
    assert_usable(path, call_id)


def test_a_writer_killed_at_a_random_moment_keeps_every_reported_commit(tmp_path):
    path = tmp_path / "parley.db"
    writer, call_id = start_writer(path, hold=NEVER)
    lines = [writer.stdout.readline() for _ in range(20 + random.randrange(50))]

    lines += kill(writer)

    reported = committed_rows(lines)
    stored = stored_rows(path, call_id)
    assert stored[: len(reported)] == reported
    assert len(stored) - len(reported) in (0, 1)  # at most the commit it died before reporting
    assert_usable(path, call_id)
