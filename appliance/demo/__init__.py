"""The demo: Acme, a fictional shop with an order database, tools and knowledge documents, so
Parley runs out of the box."""

from pathlib import Path

ACME_DIR = Path(__file__).parent / "acme"
"""The Acme agent's folder: its agent file, ``kb/`` documents and ``tests/``."""
