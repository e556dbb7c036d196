"""Text to speech for the voice loop: the Piper voice through sherpa-onnx, sentence by sentence.

``Synthesizer.stream(text, out_rate)`` speaks one sentence (or clause) at a time, so the first
audio leaves as soon as the first sentence is made, not when the whole reply is. Every chunk
says where it sits in the utterance (``offset_samples`` at ``out_rate``) and which sentence it
belongs to, so a barge-in can cut the agent's message to what the caller heard. A cancel stops
synthesis between sentences and, inside one, between the sentences espeak-ng found in it.
"""

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parley.appliance.speech.audio import AlignedResampler
from parley.appliance.speech.provider import ProviderChoice, choose_provider

log = logging.getLogger("parley.speech.tts")

SENTENCE_PAUSE_S = 0.2
"""Silence added between sentences: a Piper sentence ends within ~40 ms of its last sound, and
back-to-back sentences sound rushed on the phone."""

MAX_SENTENCE_CHARS = 160
"""A longer sentence is spoken in clauses (cut at , ; : or a dash), so its first audio is not
held back by the rest; shorter ones stay whole, since a clause spoken alone falls in pitch at its end."""

MIN_CLAUSE_CHARS = 24
"""A clause shorter than this stays with its neighbour rather than being spoken alone."""

ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "e.g", "i.e", "eg", "ie", "approx", "dept",
    "inc", "ltd", "co", "corp", "ave", "rd", "mt", "fig", "ref", "tel", "ext", "no", "nos", "vol", "est",
})
"""Words whose full stop does not end a sentence ("Mr. Smith", "e.g. this", "ref. 12")."""

_SENTENCE_END = re.compile(r"(\.{3}|[.!?…]+)([\"'”’)\]]*)\s+")
_CLAUSE_END = re.compile(r"(?:[,;:]|\s[–—-])\s+")


def split_sentences(text):
    """``text`` as speakable sentences, and long sentences as clauses; the pieces, joined by
    single spaces, are ``text`` with its whitespace collapsed.

    A full stop after an abbreviation ("Mr.", "e.g.") or an initial ("J. Smith"), before a
    lower-case word, or inside a number ("$12.50", "4512.3") does not end a sentence; a line
    break always does. Pieces with nothing to say ("...", "-") join their neighbour.
    """
    pieces = []
    for line in str(text).splitlines():
        line = " ".join(line.split())
        for sentence in _sentences_of(line):
            pieces.extend(_clauses_of(sentence))
    return _merge_unspeakable(pieces)


def _sentences_of(line):
    start = 0
    for match in _SENTENCE_END.finditer(line):
        if _continues(line, start, match):
            continue
        pieces = line[start : match.end()].strip()
        if pieces:
            yield pieces
        start = match.end()
    if line[start:].strip():
        yield line[start:].strip()


def _continues(line, start, match):
    """True when the punctuation at ``match`` does not end the sentence."""
    following = line[match.end() : match.end() + 1]
    if following.islower():
        return True
    if match.group(1) != "." or match.group(2):
        return False
    word = line[start : match.start()].rsplit(" ", 1)[-1].lower()
    if word in ABBREVIATIONS or word.replace(".", "") in ABBREVIATIONS:
        return word != "no" or following.isdigit()  # "No. 5" but "I said no. Then..."
    return len(word) == 1 and word.isalpha()  # an initial: "J. Smith"


def _clauses_of(sentence):
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return [sentence]
    parts, start = [], 0
    for match in _CLAUSE_END.finditer(sentence):
        parts.append(sentence[start : match.end()].strip())
        start = match.end()
    parts.append(sentence[start:].strip())
    clauses = []
    for part in parts:
        if clauses and (len(clauses[-1]) < MIN_CLAUSE_CHARS or len(part) < MIN_CLAUSE_CHARS) \
                and len(clauses[-1]) + 1 + len(part) <= MAX_SENTENCE_CHARS:
            clauses[-1] = f"{clauses[-1]} {part}"
        else:
            clauses.append(part)
    return clauses


def _merge_unspeakable(pieces):
    """Pieces with no letter (a list marker "1.", an ellipsis) join the next piece, or the last."""
    merged, carry = [], ""
    for piece in pieces:
        if not any(c.isalpha() for c in piece):
            carry = f"{carry} {piece}".strip()
            continue
        merged.append(f"{carry} {piece}".strip())
        carry = ""
    if carry:
        if merged:
            merged[-1] = f"{merged[-1]} {carry}"
        elif any(c.isalnum() for c in carry):
            merged.append(carry)
    return merged


_SPOKEN_ABBREVIATIONS = (
    (re.compile(r"\bMr\.(?=\s)"), "Mister"), (re.compile(r"\bMrs\.(?=\s)"), "Missus"),
    (re.compile(r"\bMs\.(?=\s)"), "Mizz"), (re.compile(r"\bDr\.(?=\s)"), "Doctor"),
    (re.compile(r"\b[Nn]o\.\s?(?=\d)"), "number "), (re.compile(r"\bapprox\.", re.I), "approximately"),
    (re.compile(r"\betc\."), "et cetera"), (re.compile(r"\bvs\.", re.I), "versus"),
)
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents")}
_MONEY = re.compile(r"([$£€])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{2}))?\b")
_CODE = re.compile(r"#(\d+)|\b(?=[A-Za-z-]*\d)(?=[\d-]*[A-Za-z])(?![0-9]+(?:st|nd|rd|th|am|pm|s)\b)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b")
_LONG_NUMBER = re.compile(r"(?<![\d,.$£€])\d{5,}(?![\d,])")


def speakable(text):
    """``text`` as the voice should read it: abbreviations spelled out, money as money
    ("$12.50" is "12 dollars and 50 cents"), and codes digit by digit ("#4512", "A-1042",
    "45127"; espeak-ng would read "four thousand five hundred...")."""
    for pattern, spoken in _SPOKEN_ABBREVIATIONS:
        text = pattern.sub(spoken, text)
    text = _MONEY.sub(_money, text)
    text = _CODE.sub(_code, text)
    return _LONG_NUMBER.sub(lambda m: " ".join(m.group(0)), text)


def _money(match):
    one, many, one_cent, cents_word = _CURRENCIES[match.group(1)]
    units = int(match.group(2).replace(",", ""))
    cents = int(match.group(3) or 0)
    words = [f"{units:,} {one if units == 1 else many}"] if units or not cents else []
    if cents:
        words.append(f"{cents} {one_cent if cents == 1 else cents_word}")
    return " and ".join(words)


def _code(match):
    if match.group(1):
        return "number " + " ".join(match.group(1))
    token = match.group(0)
    if sum(c.isalpha() for c in token) > 3:  # a word with a number in it ("COVID-19"), read as it is
        return token
    return " ".join(c for c in token if c != "-")


@dataclass(frozen=True)
class AudioChunk:
    """Synthesized audio for one sentence (or clause) of an utterance."""

    samples: np.ndarray = field(repr=False)
    """float32 in [-1, 1] at ``sample_rate``."""
    sample_rate: int
    offset_samples: int
    """Where the chunk's first sample sits in the utterance, at ``sample_rate``: chunks are
    contiguous, so each offset is the sum of the lengths before it."""
    sentence_index: int
    text: str
    """The sentence as written (before ``speakable``), for cutting the context on a barge-in."""


class Synthesizer:
    """A Piper voice (converted for sherpa-onnx) speaking whole replies as streams of chunks."""

    def __init__(self, voice_dir, *, num_threads=1, deterministic=False, speed=1.0,
                 sentence_pause=SENTENCE_PAUSE_S, provider=None):
        """``voice_dir`` holds ``model.onnx`` and ``tokens.txt`` (``parley models fetch`` writes it);
        ``speed`` > 1 speaks faster; ``provider`` as ``choose_provider`` takes it."""
        from parley.appliance.models.piper_voice import Voice

        voice_dir = Path(voice_dir)
        if not voice_dir.is_dir():
            raise FileNotFoundError(f"{voice_dir} not found: no voice there; run `parley models fetch`")
        self._provider = choose_provider(provider)
        self._voice = Voice(voice_dir, num_threads=num_threads, deterministic=deterministic,
                            provider=self._provider.provider)
        self.name = voice_dir.name
        self.voice_dir = voice_dir
        self.speed = speed
        self.sentence_pause = sentence_pause
        log.info("tts_loaded voice=%s rate=%d threads=%d provider=%s reason=%r",
                 self.name, self.sample_rate, num_threads, self._provider.provider, self._provider.reason)

    @property
    def sample_rate(self):
        """The voice's own rate (22,050 Hz for the default voice)."""
        return self._voice.sample_rate

    @property
    def provider(self) -> ProviderChoice:
        return self._provider

    sentences = staticmethod(split_sentences)

    def stream(self, text, out_rate=None, cancelled=None):
        """Yield ``AudioChunk``s of ``text`` at ``out_rate`` (default the voice's rate), one per
        sentence, each as soon as it is synthesized. ``cancelled`` (a ``threading.Event``) stops
        synthesis within the espeak-ng sentence being made; nothing more is yielded after it is set.
        """
        out_rate = out_rate or self.sample_rate
        resampler = AlignedResampler(self.sample_rate, out_rate)  # refuses a rate it has no filter for
        sentences = split_sentences(text)
        pause = np.zeros(round(self.sentence_pause * self.sample_rate), np.float32)
        offset = 0
        for index, sentence in enumerate(sentences):
            if cancelled is not None and cancelled.is_set():
                return
            started = time.perf_counter()
            samples, _ = self._voice.generate(speakable(sentence), self.speed,
                                              None if cancelled is None else lambda _: not cancelled.is_set())
            if cancelled is not None and cancelled.is_set():
                return
            last = index == len(sentences) - 1
            out = resampler.process(samples if last else np.concatenate([samples, pause]))
            if last:
                out = np.concatenate([out, resampler.flush()])
            log.debug("tts_sentence index=%d chars=%d audio_s=%.2f compute_s=%.3f",
                      index, len(sentence), len(samples) / self.sample_rate, time.perf_counter() - started)
            yield AudioChunk(out, out_rate, offset, index, sentence)
            offset += len(out)

    def speak(self, text, out_rate=None):
        """The whole of ``text`` as one float32 array at ``out_rate`` (default the voice's rate)."""
        chunks = [chunk.samples for chunk in self.stream(text, out_rate)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
