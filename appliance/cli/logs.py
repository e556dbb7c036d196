"""How the long-running commands (`parley demo`, `parley call`) log: warnings only, or every
worker and call event with ``--verbose``."""

import logging


def configure(verbose):
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
