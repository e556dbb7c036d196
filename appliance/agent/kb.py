"""The knowledge base: an agent's documents, cut into short titled chunks and searched with BM25.

Documents are the ``*.md`` and ``*.txt`` files under an agent's ``kb/`` folder. They are split at
markdown headings, then at paragraphs, into chunks of at most ``MAX_CHUNK_WORDS`` words that
keep their heading path as a title, and indexed in an in-memory SQLite FTS5 table (porter
stemming, so "refunds" finds "refund"). Queries are the caller's transcribed words: only words
reach FTS5's MATCH, so nothing a caller says can be read as query syntax.
"""

import hashlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_CHUNK_WORDS = 120
"""Long enough for a policy paragraph, short enough that three chunks fit a prompt cheaply."""
DOCUMENT_SUFFIXES = (".md", ".txt")
PREFIX_MATCH_MIN_LETTERS = 4
"""Words this long also match as prefixes ("deliver" finds "delivery"); shorter ones would match too much."""
MAX_QUERY_TERMS = 32
DEFAULT_MIN_SCORE = 0.1
"""Drops matches on words found in most chunks, which FTS5's BM25 scores as almost nothing."""
TITLE_WEIGHT = 2.0
"""A word in a chunk's heading counts twice as much as one in its text."""

STOP_WORDS = frozenset(
    """
    a about above after again against ago all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it its
    itself just let me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them themselves
    then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves hi hello hey um uh
    er erm okay ok yeah yes please thanks thank like want wanted need get got know think tell
    going gonna wanna im ive id dont cant thats whats hes shes theyre youre don doesn didn isn
    aren wasn weren won wouldn couldn shouldn haven hasn ll ve re
    """.split()
)
"""Words that say nothing about which document answers: English function words and call fillers."""

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_WORD = re.compile(r"[^\W_]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


PROMPT_SECTION_HEADING = "Knowledge base passages (answer from these; say so when they do not cover the question):"


class KnowledgeBaseError(Exception):
    """A knowledge folder or document cannot be used; the message names it and the fix."""

    def __init__(self, message: str, path: Path | None = None):
        self.path = path
        super().__init__(message)


@dataclass(frozen=True)
class Chunk:
    """A passage of one document, small enough to quote into the prompt."""

    id: str
    """``<file relative to the folder>#<n>``, n counting from 1 in file order: stable while the file is."""
    title: str
    """The headings above the passage, outermost first ("Returns policy > Damaged items")."""
    text: str
    score: float = 0.0
    """BM25 relevance to the query it was found for; higher is better, 0 when not from a search."""


def _require_fts5() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE probe USING fts5(text)")
    except sqlite3.OperationalError:
        raise KnowledgeBaseError(
            f"this Python's sqlite3 (SQLite {sqlite3.sqlite_version}) is built without FTS5, which the "
            "knowledge base needs: use a Python whose SQLite has FTS5 (the python.org and distribution builds do)"
        ) from None
    finally:
        conn.close()


def _title_from_name(path: Path) -> str:
    words = re.sub(r"[-_]+", " ", path.stem).strip()
    return words[:1].upper() + words[1:]


def _split_long(paragraph: str, limit: int) -> Iterator[str]:
    """A paragraph over ``limit`` words, cut at sentence ends (or, for a run-on sentence, at words)."""
    pieces: list[str] = []
    count = 0
    for sentence in _SENTENCE_END.split(paragraph):
        words = sentence.split()
        while len(words) > limit:
            if pieces:
                yield " ".join(pieces)
                pieces, count = [], 0
            yield " ".join(words[:limit])
            words = words[limit:]
        if count + len(words) > limit and pieces:
            yield " ".join(pieces)
            pieces, count = [], 0
        if words:
            pieces.append(" ".join(words))
            count += len(words)
    if pieces:
        yield " ".join(pieces)


def split_document(text: str, default_title: str, max_words: int = MAX_CHUNK_WORDS) -> list[tuple[str, str]]:
    """``(title, text)`` chunks of a document: a section per heading, paragraphs packed up to
    ``max_words`` words, a longer paragraph cut at sentences. Headings with no text of their own
    give no chunk."""
    chunks: list[tuple[str, str]] = []
    headings: list[tuple[int, str]] = []
    paragraphs: list[str] = []
    lines: list[str] = []

    def end_paragraph() -> None:
        if lines:
            paragraphs.append("\n".join(lines))
            lines.clear()

    def end_section() -> None:
        end_paragraph()
        title = " > ".join(heading for _, heading in headings) or default_title
        packed: list[str] = []
        count = 0
        for paragraph in paragraphs:
            size = len(paragraph.split())
            if size > max_words:
                if packed:
                    chunks.append((title, "\n\n".join(packed)))
                    packed, count = [], 0
                chunks.extend((title, piece) for piece in _split_long(paragraph, max_words))
                continue
            if count + size > max_words and packed:
                chunks.append((title, "\n\n".join(packed)))
                packed, count = [], 0
            packed.append(paragraph)
            count += size
        if packed:
            chunks.append((title, "\n\n".join(packed)))
        paragraphs.clear()

    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            end_section()
            level = len(heading.group(1))
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, heading.group(2)))
        elif line.strip():
            lines.append(line.rstrip())
        else:
            end_paragraph()
    end_section()
    return chunks


def fts_query(text: str) -> str:
    """The caller's words as a safe FTS5 query: each word quoted, stop words and stray letters
    (the "s" of "what's") dropped, OR-joined, words of ``PREFIX_MATCH_MIN_LETTERS`` or more as
    prefixes; "" when no word is left."""
    terms: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word in STOP_WORDS or word in terms or (len(word) == 1 and not word.isdigit()):
            continue
        terms.append(word)
        if len(terms) == MAX_QUERY_TERMS:
            break
    return " OR ".join(f'"{term}"*' if len(term) >= PREFIX_MATCH_MIN_LETTERS else f'"{term}"' for term in terms)


class KnowledgeBase:
    """An agent's documents, indexed for search; build one with ``from_folder``."""

    def __init__(
        self,
        documents: Iterable[tuple[str, bytes]] = (),
        *,
        min_score: float = DEFAULT_MIN_SCORE,
        folder: Path | None = None,
    ):
        """``documents`` as ``(name, UTF-8 bytes)``; ``min_score`` drops weaker matches from searches;
        ``folder``, where the names are relative to, only for error messages."""
        _require_fts5()
        self.min_score = min_score
        self._documents = sorted(documents)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE VIRTUAL TABLE chunks USING fts5(id UNINDEXED, title, text, tokenize='porter unicode61')"
        )
        self.chunks: list[Chunk] = []
        for name, content in self._documents:
            try:
                text = content.decode("utf-8-sig")
            except UnicodeDecodeError as error:
                path = folder / name if folder else Path(name)
                raise KnowledgeBaseError(
                    f"{path}: not UTF-8 text (byte 0x{content[error.start]:02x} at offset {error.start}); "
                    "save it as UTF-8",
                    path,
                ) from None
            for n, (title, body) in enumerate(split_document(text, _title_from_name(Path(name))), start=1):
                self.chunks.append(Chunk(f"{name}#{n}", title, body))
        self._db.executemany(
            "INSERT INTO chunks (id, title, text) VALUES (?, ?, ?)", [(c.id, c.title, c.text) for c in self.chunks]
        )

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, *, min_score: float = DEFAULT_MIN_SCORE) -> "KnowledgeBase":
        """The ``*.md`` and ``*.txt`` files under ``folder`` (hidden ones skipped); none, or no
        folder at all, gives an empty knowledge base."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise KnowledgeBaseError(f"{folder} is a file; the knowledge base is a folder of documents", folder)
        documents = []
        for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
            relative = path.relative_to(folder)
            if path.suffix.lower() in DOCUMENT_SUFFIXES and path.is_file() and not any(
                part.startswith(".") for part in relative.parts
            ):
                try:
                    content = path.read_bytes()
                except OSError as error:
                    raise KnowledgeBaseError(f"{path}: cannot be read ({error.strerror})", path) from None
                documents.append((relative.as_posix(), content))
        return cls(documents, min_score=min_score, folder=folder)

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def document_names(self) -> list[str]:
        return [name for name, _ in self._documents]

    def search(self, query: str, limit: int = 3, *, min_score: float | None = None) -> list[Chunk]:
        """The best ``limit`` chunks for ``query`` (any text a caller said), best first."""
        match = fts_query(query)
        if not match or limit <= 0:
            return []
        floor = self.min_score if min_score is None else min_score
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, title, text, -bm25(chunks, 0.0, {TITLE_WEIGHT}, 1.0) AS score FROM chunks"
                " WHERE chunks MATCH ? ORDER BY score DESC, rowid LIMIT ?",
                (match, limit),
            ).fetchall()
        return [Chunk(id, title, text, score) for id, title, text, score in rows if score >= floor]

    def content_hash(self) -> str:
        """sha256 over every document's name and bytes: changes exactly when the documents do."""
        digest = hashlib.sha256()
        for name, content in self._documents:
            encoded = name.encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "big") + encoded + len(content).to_bytes(8, "big") + content)
        return digest.hexdigest()

    def close(self) -> None:
        self._db.close()


def prompt_section(chunks: Iterable[Chunk]) -> str:
    """The chunks as the system prompt's knowledge section, each headed by its id so the agent
    (and a reviewer) can tell which passage an answer came from; "" when there are none."""
    parts = [f"[{chunk.id}] {chunk.title}\n{chunk.text}" for chunk in chunks]
    if not parts:
        return ""
    return PROMPT_SECTION_HEADING + "\n\n" + "\n\n".join(parts)
