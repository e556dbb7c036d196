"""The entry point the supervisor runs for each worker process.

``python -X faulthandler -m parley.appliance.bus.worker_process package.module:WorkerClass
--endpoint ENDPOINT --name NAME``: loads the class, runs it until ``shutdown``, SIGTERM, or the
death of the parent supervisor. Logs go to stderr, which the supervisor reads and tails.
"""

import argparse
import faulthandler
import importlib
import logging
import signal
import sys

from parley.appliance.bus.worker import Worker


def load_worker_class(target):
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"cannot load worker {target!r} ({exc}): give package.module:WorkerClass, importable here")
    if not (isinstance(cls, type) and issubclass(cls, Worker)):
        raise SystemExit(f"{target} is not a parley.appliance.bus.worker.Worker subclass")
    return cls


def main(argv=None):
    parser = argparse.ArgumentParser(prog="parley.appliance.bus.worker_process", description=__doc__)
    parser.add_argument("target", help="package.module:WorkerClass")
    parser.add_argument("--endpoint", required=True, help="the router's workers endpoint")
    parser.add_argument("--name", required=True)
    parser.add_argument("--heartbeat-interval", type=float, required=True)
    parser.add_argument("--parent-pid", type=int)
    args = parser.parse_args(argv)
    faulthandler.enable()  # also when started without -X faulthandler
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    worker = load_worker_class(args.target)(
        args.endpoint, name=args.name, heartbeat_interval=args.heartbeat_interval, parent_pid=args.parent_pid
    )
    signal.signal(signal.SIGTERM, lambda signum, frame: worker.stop())
    worker.run()


if __name__ == "__main__":
    main()
