"""The core's evaluation set: caller turns with known speech, clean, in noise and over G.711.

VAD, endpointing and barge-in are all scored on these turns (``/work/shared/EVALUATION.md``):
real recordings (beckett.wav whole, two_cities.wav cut at its natural pauses), scripted caller
lines spoken by espeak-ng and the Piper voice with pauses of known length between their phrases,
and mid-sentence pauses: a pause of known length inserted at a word boundary inside speech spoken
in one breath (recorded, and whole Piper utterances), so what comes before it sounds unfinished
("my order number is … four five one two"). Each pause (``hold``) says which of these it is
(``hold_kinds``). Labels come from the clean signal only, so a noisy or telephone variant is judged
against what was really said. Building is offline work (numpy, espeak-ng, sherpa-onnx), cached
under ``<models_dir>/.cache/evalset/``; none of it is the real-time path.
"""

import hashlib
import io
import math
import subprocess
import wave
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from parley.core import codecs
from parley.core._audio_sets import (atomic_save, digest, espeak_version, file_identity, load_npz, models_dir_or_default,
                                     read_wav, save_npz)

RATE = 16000
"""Sample rate of the wideband turns."""
TELEPHONE_RATE = 8000
"""Sample rate of the G.711 turns."""
FRAME_MS = 20
"""Length of one labelled frame: the real-time loop's frame."""
HOLD_MIN_MS = 100
"""Shortest silence that counts as a pause (a ``hold``); shorter gaps are inside speech."""
LEAD_IN_S = 0.5
"""Non-speech before each turn's first word, so detectors see the line before the caller."""
TRAILING_S = 1.6
"""Non-speech after each turn's last word (at least): the true end of turn is then known."""
NOISE_KINDS = ("white", "pink", "babble")
"""Noise mixed into the noisy variants, rotated over turns and SNRs."""
NOISE_ONLY_DBFS = -30.0
"""RMS level of ``noise_only``'s output."""
SPEECH_LEVELS_DBFS = (-32.0, -20.0)
"""Range of a turn's active speech level (drawn per turn): callers are loud and quiet."""
HOLD_KINDS = ("natural", "spliced", "cut")
"""What a hold is: the speaker's own pause in a recording or utterance; a silence between
phrases synthesized apart (each ends like a finished utterance); a pause inserted at a word
boundary mid-sentence, inside speech spoken in one breath."""
RECIPE_VERSION = 5
"""Bump when the construction changes, so cached sets are rebuilt."""

_BLOCK_MS = 10
_CUT_PAUSE_MS = 350
_MIN_PIECE_S = 2.0
_BABBLE_BED_S = 30.0
_BABBLE_TALKERS = 6
_PEAK_LIMIT = 0.95
_CUT_FADE_MS = 5


@dataclass(frozen=True)
class EvalTurn:
    """One caller turn as a detector hears it, with the truth taken from its clean signal."""

    name: str
    """``<source>/<clean|snrN>/<wideband|g711>``, e.g. ``beckett/snr5/g711``."""
    audio: np.ndarray
    """float32 mono at ``sample_rate``: what the detector is given (noisy, over the line)."""
    clean: np.ndarray
    """float32 mono, same length and rate: the speech alone, before noise and codec."""
    sample_rate: int
    """16000, or 8000 for the telephone variant."""
    frame_ms: int
    """Length of a labelled frame (20)."""
    frame_labels: np.ndarray
    """bool per ``frame_ms`` frame: at least half of the frame lies inside a speech segment."""
    speech_segments: tuple
    """``((start_sample, end_sample), ...)`` of speech in the clean signal, gaps < 100 ms merged."""
    holds: tuple
    """``((start_sample, end_sample), ...)``: the mid-turn silences (>= 100 ms) between segments."""
    end_of_speech: int
    """Sample index where the turn's speech truly ends (the end of the last segment)."""
    snr_db: float | None
    """Speech-to-noise ratio over the speech-active samples; None for the clean variant."""
    channel: str
    """``wideband`` (16 kHz) or ``g711`` (8 kHz mu-law, decoded)."""
    text: str | None
    """What is said, where it is known exactly (scripted lines, beckett)."""
    noise: str | None = None
    """Kind of noise mixed in (one of ``NOISE_KINDS``); None for the clean variant."""
    hold_kinds: tuple = ()
    """One of ``HOLD_KINDS`` per hold, in order."""

    @property
    def duration_s(self):
        return len(self.audio) / self.sample_rate


@dataclass(frozen=True)
class ScriptedLine:
    """A caller line synthesized phrase by phrase, with silences of known length between."""

    name: str
    voice: str
    """An espeak-ng voice (``en-us+m3``), or ``piper`` for the fetched Piper voice."""
    speed: float
    """Words per minute for espeak-ng; the length scale's inverse for Piper (1.0 = natural)."""
    parts: tuple
    """Phrases (str) and, between them, pauses in milliseconds (int)."""

    @property
    def text(self):
        return " ".join(part for part in self.parts if isinstance(part, str))


SCRIPTED_LINES = (
    ScriptedLine("order-number", "en-us+m3", 160, ("my order number is", 650, "4 5 1 2")),
    ScriptedLine("return-jacket", "en-us+f2", 175, ("I'd like to return", 180, "the blue jacket I bought last week")),
    ScriptedLine("refund-status", "en-gb+m1", 150, ("hi, yes", 420, "I'm calling about my refund")),
    ScriptedLine("shipped", "en-us+f4", 190, ("can you check", 250, "whether it has shipped yet")),
    ScriptedLine("postcode", "en-gb+f3", 140, ("the postcode is", 850, "S W 1 A", 300, "1 A A")),
    ScriptedLine("date", "en-us+m5", 165, ("um", 700, "I think it was the twelfth of March")),
    ScriptedLine("returns-policy", "en-us+m1", 180, ("what is your returns policy for opened items",)),
    ScriptedLine("spelling", "en-us+f5", 155, ("my name is Jane Doe", 500, "D", 150, "O", 150, "E")),
    ScriptedLine("yes", "en-gb+m4", 170, ("yes",)),
    ScriptedLine("correction", "en-us+m7", 170, ("no, that's not right", 300, "it should be three items")),
    ScriptedLine("transfer", "en-us+f1", 160, ("could you put me through to a person please",)),
    ScriptedLine("card-digits", "en-us+m2", 150, ("the card ends in", 900, "7 7", 120, "0 9")),
    ScriptedLine("piper-order", "piper", 1.0, ("I ordered a kettle", 600, "and it arrived broken")),
    ScriptedLine("piper-account", "piper", 1.1, ("my account number is", 750, "8 3 0", 200, "5 5 1")),
    ScriptedLine("piper-question", "piper", 0.95, ("when will my parcel arrive",)),
    ScriptedLine("piper-hesitant", "piper", 1.0, ("so", 450, "I was wondering", 300, "if I could change the address")),
    ScriptedLine("piper-yes-right", "piper", 1.0, ("yes that's right",)),
    ScriptedLine("piper-digits", "piper", 1.0, ("four five one two",)),
    ScriptedLine("piper-no-thanks", "piper", 1.0, ("no thanks",)),
    ScriptedLine("piper-thats-all", "piper", 1.0, ("that's all",)),
    ScriptedLine("piper-by-email", "piper", 1.0, ("can you send it by email",)),
    ScriptedLine("piper-thank-you", "piper", 1.0, ("thank you very much",)),
    ScriptedLine("piper-everything", "piper", 1.0, ("no that's everything",)),
    ScriptedLine("piper-yes-please", "piper", 1.0, ("yes please",)),
    ScriptedLine("piper-my-name", "piper", 1.0, ("it's Sarah Collins",)),
    ScriptedLine("piper-how-long", "piper", 1.0, ("how long will it take",)),
    ScriptedLine("piper-sounds-good", "piper", 1.0, ("okay that sounds good",)),
)
"""The scripted caller turns; Piper lines are built only when the voice is fetched."""

@dataclass(frozen=True)
class MidSentenceCut:
    """Speech spoken in one breath with a pause of known length inserted at a word boundary."""

    name: str
    source: str
    """``beckett`` or ``two_cities`` (the recordings), or ``piper`` (one utterance of the voice)."""
    text: str
    """What is said, ``|`` where the pause goes."""
    cut_s: float
    """Where the pause goes: seconds into the recording, or into the trimmed Piper utterance."""
    pause_ms: int
    start_s: float = 0.0
    """Recordings: where the turn starts; it ends at the reader's next long pause after the cut."""

    @property
    def spoken(self):
        return " ".join(self.text.replace("|", " ").split())


MID_SENTENCE_CUTS = (
    MidSentenceCut("cut-best", "two_cities", "It was the | best of times", 1.71, 650),
    MidSentenceCut("cut-wisdom", "two_cities", "it was the age of | wisdom", 5.73, 450, start_s=4.90),
    MidSentenceCut("cut-before", "two_cities", "we had everything before | us", 22.08, 750, start_s=21.10),
    MidSentenceCut("cut-present", "two_cities", "so far like the | present period", 31.48, 550, start_s=28.90),
    MidSentenceCut("cut-superlative", "two_cities", "in the superlative | degree", 39.86, 800, start_s=38.50),
    MidSentenceCut("cut-better", "beckett", "Fail again. Fail | better.", 8.47, 600, start_s=5.90),
    MidSentenceCut("cut-order-number", "piper", "my order number is | four five one two", 0.94, 700),
    MidSentenceCut("cut-change", "piper", "I'd like to change the | delivery address", 1.03, 500),
    MidSentenceCut("cut-wondering", "piper", "I was wondering if I could | change the address", 1.19, 800),
    MidSentenceCut("cut-kettle", "piper", "I ordered a kettle | and it arrived broken", 0.90, 400),
    MidSentenceCut("cut-delivered", "piper", "it was delivered on the | twelfth of March", 0.96, 600),
    MidSentenceCut("cut-name", "piper", "the account is in the name of | Jane Doe", 1.27, 750),
    MidSentenceCut("cut-cancel-appt", "piper", "I need to cancel my appointment on | Tuesday morning", 1.725, 600),
    MidSentenceCut("cut-card-charge", "piper", "the charge on my card was | forty dollars", 1.235, 850),
    MidSentenceCut("cut-paid-bill", "piper", "I paid the bill | last week", 0.715, 550),
    MidSentenceCut("cut-dob", "piper", "my date of birth is | the third of June", 0.895, 450),
    MidSentenceCut("cut-calling-about", "piper", "I'm calling about my | electricity bill", 1.115, 700),
    MidSentenceCut("cut-book-doctor", "piper", "I'd like to book an appointment with | doctor Patel", 1.615, 750),
    MidSentenceCut("cut-transfer", "piper", "I want to transfer money to | my savings account", 1.255, 750),
    MidSentenceCut("cut-prescription", "piper", "my prescription ran out | on Friday", 1.105, 750),
    MidSentenceCut("cut-returned-shoes", "piper", "I returned the shoes | two weeks ago", 0.895, 900),
    MidSentenceCut("cut-invoice", "piper", "could you send the invoice to | my work address", 1.155, 850),
    MidSentenceCut("cut-mortgage", "piper", "I'd like to speak to someone about | my mortgage", 1.515, 750),
    MidSentenceCut("cut-declined", "piper", "my card was declined | at the supermarket", 1.075, 450),
    MidSentenceCut("cut-moved-house", "piper", "I moved house | in January", 0.645, 450),
)
"""The mid-sentence pauses. Each cut lies in the energy valley of a word boundary, found from the
10 ms envelope and checked by transcribing both sides with Whisper tiny.en (the words before the
``|`` on one side, the rest on the other). espeak-ng is left out: its intonation does not carry
"unfinished" (whole espeak-ng lines cut this way scored "complete" by Smart Turn in 6 of 8 tries).
Joins with no valley between the words (``the card ends in | seven``) are left out too.

The caller-style Piper cuts from ``cut-cancel-appt`` on were added after the words model's
threshold was chosen, as a check on it: the valley was searched within 25 % of where the
characters put the cut, and kept only when Whisper heard exactly the words before the ``|`` on
the left; 5 of 18 sentences were dropped because Whisper heard the next word broken on the right
("near is coming"), a cut inside a word. Some of them sound finished where they are cut ("my
card was declined"): a pause there is one no listener could call."""

AGENT_LINE_BEFORE = {
    "espeak/order-number": "Can I have your order number, please?",
    "espeak/postcode": "What's the postcode on the account?",
    "espeak/date": "When did you place the order?",
    "espeak/spelling": "Could I take your full name, please?",
    "espeak/yes": "Would you like me to go ahead with the refund?",
    "espeak/correction": "So that's two items, is that right?",
    "espeak/card-digits": "What are the last four digits of the card?",
    "piper/piper-account": "What's your account number?",
    "piper/piper-yes-right": "Your order number is 4512, is that right?",
    "piper/piper-digits": "What's your order number?",
    "piper/piper-no-thanks": "Would you like a receipt by email?",
    "piper/piper-thats-all": "Is there anything else I can help you with?",
    "piper/piper-by-email": "How would you like the receipt sent?",
    "piper/piper-thank-you": "I've issued the refund. You'll see it in three to five days.",
    "piper/piper-everything": "Is there anything else I can help you with?",
    "piper/piper-yes-please": "Shall I go ahead with the refund?",
    "piper/piper-my-name": "Who am I speaking to, please?",
    "piper/piper-how-long": "I've arranged a replacement for you.",
    "piper/piper-sounds-good": "I can send a replacement tomorrow. Does that work for you?",
    "piper/cut-order-number": "What's your order number?",
    "piper/cut-delivered": "When was it delivered?",
    "piper/cut-name": "Whose name is the account in?",
    "piper/cut-card-charge": "How much was the charge?",
    "piper/cut-dob": "Can you confirm your date of birth?",
}
"""What the agent asked just before a caller line, by source (``<family>/<name>``), where the line
answers a question; other lines (openers, the recordings) follow the generic greeting
(``parley.core.turn_text.DEFAULT_AGENT_LINE``). A cut and its whole sentence share their line, as
on a call. Written for each line's words before any line was read with them; the end-of-turn
words model reads the caller's words as a reply to it (``agent_line_before``)."""


def source_of(turn_name):
    """The source a turn was made from (``<family>/<name>``, or the recording's name), shared by
    its clean, noisy, wideband and G.711 copies: the name less its ``/<snr>/<channel>``."""
    return turn_name.rsplit("/", 2)[0]


def agent_line_before(turn_name):
    """The agent's line before a turn named ``<family>/<name>/<snr>/<channel>``; None: the greeting."""
    return AGENT_LINE_BEFORE.get(source_of(turn_name))


BABBLE_LINES = (
    ("en-us+m1", "the meeting was moved to thursday afternoon because of the weather"),
    ("en-us+f3", "she said the train would be late again so we took the bus instead"),
    ("en-gb+m4", "there are three boxes in the hall and one of them is still open"),
    ("en-us+f5", "we should ask them about the invoice before the end of the month"),
    ("en-gb+m7", "he parked the car outside the bakery and walked down to the river"),
    ("en-us+m2", "can you believe how expensive the tickets were for that concert"),
    ("en-gb+f2", "the garden looks lovely now that the roses have started to bloom"),
    ("en-us+m6", "i will call you back later when i have the numbers in front of me"),
)
"""Other talkers, summed at low level into babble noise."""

BECKETT_TEXT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


def build_turn_set(models_dir=None, *, snrs=(None, 20, 10, 5, 0), telephone=True, seed=0):
    """Every turn in every condition: per source, per SNR (None = clean), wideband then G.711.

    Deterministic for a given ``seed``; cached under ``<models_dir>/.cache/evalset/`` by a hash
    of the recipe, so a second build only loads arrays.
    """
    models_dir = models_dir_or_default(models_dir)
    sources = {"beckett": models_dir / "beckett" / "beckett.wav",
               "two_cities": models_dir / "two-cities" / "two_cities.wav"}
    for path in sources.values():
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not fetched: run `parley models fetch --for test`")
    voice_dir = models_dir / "voice-en_US-joe-medium"
    with_piper = (voice_dir / "model.onnx").is_file() and (voice_dir / "tokens.txt").is_file()
    recipe = {
        "version": RECIPE_VERSION, "snrs": [None if s is None else float(s) for s in snrs],
        "telephone": bool(telephone), "seed": int(seed), "espeak": espeak_version(),
        "sources": {name: _file_digest(path) for name, path in sources.items()},
        "piper": file_identity(voice_dir / "model.onnx") if with_piper else None,
        "lines": [[line.name, line.voice, line.speed, list(line.parts)] for line in SCRIPTED_LINES],
        "cuts": [[c.name, c.source, c.text, c.cut_s, c.pause_ms, c.start_s] for c in MID_SENTENCE_CUTS],
        "babble": [list(line) for line in BABBLE_LINES],
    }
    cache_dir = models_dir / ".cache" / "evalset"
    cached = cache_dir / f"set-{digest(recipe)[:20]}.npz"
    if cached.is_file():
        return _load_set(cached)
    synth = _Synthesizer(cache_dir / "synth", voice_dir if with_piper else None)
    turns = _build(sources, synth, snrs, telephone, seed)
    _save_set(cached, turns)
    return turns


def noise_only(duration_s, sample_rate, kind, seed):
    """``duration_s`` of noise alone at ``NOISE_ONLY_DBFS`` RMS, for false-alarm tests.

    ``kind`` is one of ``NOISE_KINDS``; babble is other people talking (not the caller), so
    whether it counts as speech is the test's choice.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind must be one of {NOISE_KINDS}, not {kind!r}")
    if sample_rate not in (RATE, TELEPHONE_RATE):
        raise ValueError(f"sample_rate must be {TELEPHONE_RATE} or {RATE}, not {sample_rate}")
    length = int(round(duration_s * sample_rate))
    rng = np.random.default_rng([int(seed), NOISE_KINDS.index(kind), sample_rate])
    if kind == "babble":
        noise = _babble_slice(_shared_babble_bed(sample_rate), length, rng)
    else:
        noise = _coloured_noise(kind, length, rng)
    return (noise * 10 ** (NOISE_ONLY_DBFS / 20)).astype(np.float32)


def resample(x, in_rate, out_rate):
    """Offline windowed-sinc (Kaiser) resampling between any two integer rates.

    For building and scoring the set only; the real-time loop has its own polyphase filters.
    """
    x = np.asarray(x, dtype=np.float64)
    if in_rate == out_rate:
        return x.astype(np.float32)
    g = math.gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g
    cutoff = 0.92 * min(1.0, out_rate / in_rate)
    half = int(math.ceil(24 / cutoff))
    taps = np.arange(-half + 1, half + 1)
    t = taps[None, :] - (np.arange(up) / up)[:, None]
    kernel = cutoff * np.sinc(cutoff * t) * _kaiser(t / half, 8.0)
    padded = np.concatenate([np.zeros(half), x, np.zeros(half + 1)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(taps))
    n_out = len(x) * out_rate // in_rate
    out = np.empty(n_out)
    # Outputs r, r + up, r + 2 up, ... share one filter phase and step ``down`` inputs apart.
    for r in range(min(up, n_out)):
        count = len(range(r, n_out, up))
        first = (r * down) // up + 1
        out[r::up] = windows[first: first + count * down: down] @ kernel[(r * down) % up]
    return out.astype(np.float32)


def _kaiser(u, beta):
    inside = np.clip(1.0 - u * u, 0.0, None)
    return np.where(np.abs(u) <= 1.0, np.i0(beta * np.sqrt(inside)) / np.i0(beta), 0.0)


# --- labels from the clean signal -------------------------------------------------------------

def _block_energy_db(clean, rate):
    """Pre-emphasized energy per 10 ms block (dB): rumble and hum do not count as speech."""
    block = rate * _BLOCK_MS // 1000
    x = np.asarray(clean, dtype=np.float64)
    emphasized = np.empty_like(x)
    emphasized[0] = x[0]
    emphasized[1:] = x[1:] - 0.97 * x[:-1]
    n = len(x) // block
    blocks = emphasized[: n * block].reshape(n, block)
    return 10 * np.log10((blocks ** 2).mean(axis=1) + 1e-10)


def _block_voicing(clean, rate):
    """Peak normalized autocorrelation per 10 ms block over pitch lags 2.5-12.5 ms (80-400 Hz)."""
    block = rate * _BLOCK_MS // 1000
    window = 4 * block
    x = np.asarray(clean, dtype=np.float64)
    n = len(x) // block
    padded = np.concatenate([np.zeros(window), x, np.zeros(window)])
    starts = np.arange(n) * block + window - (window - block) // 2
    frames = padded[starts[:, None] + np.arange(window)[None, :]]
    frames = (frames - frames.mean(axis=1, keepdims=True)) * np.hanning(window)[None, :]
    spectrum = np.fft.rfft(frames, n=2 * window)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, n=2 * window)[:, :window]
    lo, hi = rate // 400, rate // 80
    # Divide by the window's own autocorrelation so a perfect periodic signal scores 1 at any lag.
    taper = np.correlate(np.hanning(window), np.hanning(window), "full")[window - 1:]
    normalized = acf[:, lo:hi] / (acf[:, :1] + 1e-12) * (taper[0] / taper[lo:hi])[None, :]
    return normalized.max(axis=1)


def _speech_level_thresholds(clean, rate):
    """(floor, peak) of a recording's block energies in dB, for thresholds relative to both."""
    energy = _block_energy_db(clean, rate)
    return float(np.percentile(energy, 10)), float(np.percentile(energy, 99))


def _speech_segments(clean, rate, floor_db, peak_db):
    """Sample ranges of speech: blocks well above the floor, grouped across gaps < 100 ms,
    kept when the group holds voiced blocks (breaths and clicks are unvoiced)."""
    block = rate * _BLOCK_MS // 1000
    energy = _block_energy_db(clean, rate)
    active = energy > max(floor_db + 10.0, peak_db - 50.0)
    strong = energy > peak_db - 25.0
    voiced = strong & (_block_voicing(clean, rate) > 0.6)
    runs = _runs(active)
    groups = []
    max_gap = HOLD_MIN_MS // _BLOCK_MS
    for start, end in runs:
        if groups and start - groups[-1][1] < max_gap:
            groups[-1][1] = end
        else:
            groups.append([start, end])
    return tuple((s * block, e * block) for s, e in groups if voiced[s:e].sum() >= 3)


def _runs(mask):
    """(start, end) index pairs of the True runs of a bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _frame_labels(segments, length, rate):
    frame = rate * FRAME_MS // 1000
    inside = np.zeros(length, dtype=bool)
    for start, end in segments:
        inside[start:end] = True
    return inside[: length // frame * frame].reshape(-1, frame).mean(axis=1) >= 0.5


def _holds(segments):
    return tuple((a_end, b_start) for (_, a_end), (b_start, _) in zip(segments, segments[1:]))


# --- sources -----------------------------------------------------------------------------------

@dataclass
class _CleanTurn:
    name: str
    clean: np.ndarray
    segments: tuple
    text: str | None
    hold_kinds: tuple


def _build(sources, synth, snrs, telephone, seed):
    recordings = {}
    for name, path in sources.items():
        audio, rate = read_wav(path)
        recordings[name] = resample(audio, rate, RATE)
    clean_turns = _recorded_turns(recordings, seed) + _scripted_turns(synth) + _cut_turns(recordings, synth, seed)
    bed = _babble_bed(synth)
    turns = []
    for index, source in enumerate(clean_turns):
        rng = np.random.default_rng([seed, index, 0])
        level_db = rng.uniform(*SPEECH_LEVELS_DBFS)
        clean = source.clean * (10 ** (level_db / 20) / _active_rms(source.clean, source.segments))
        variants = []
        for condition, snr in enumerate(snrs):
            rng = np.random.default_rng([seed, index, condition + 1])
            if snr is None:
                variants.append(("clean", None, None, clean))
                continue
            kind = NOISE_KINDS[(index + condition) % len(NOISE_KINDS)]
            noise = _babble_slice(bed, len(clean), rng) if kind == "babble" else _coloured_noise(kind, len(clean), rng)
            variants.append((f"snr{snr:g}", float(snr), kind, _mix_at_snr(clean, source.segments, noise, snr)))
        # One gain for the clean turn and all its mixes, so the loudest mix does not clip and
        # every SNR stays exact.
        headroom = min(1.0, _PEAK_LIMIT / max(np.max(np.abs(audio)) for *_, audio in variants))
        clean = (clean * headroom).astype(np.float32)
        labels = _frame_labels(source.segments, len(clean), RATE)
        narrow_clean = resample(clean, RATE, TELEPHONE_RATE) if telephone else None
        narrow_segments = tuple((s // 2, e // 2) for s, e in source.segments)
        for tag, snr, kind, audio in variants:
            audio = clean if snr is None else (audio * headroom).astype(np.float32)
            turns.append(_turn(f"{source.name}/{tag}/wideband", audio, clean, RATE, labels,
                               source.segments, snr, "wideband", source, kind))
            if telephone:
                line = codecs.ulaw_decode(codecs.ulaw_encode(codecs.float32_to_pcm16(
                    resample(audio, RATE, TELEPHONE_RATE))))
                turns.append(_turn(f"{source.name}/{tag}/g711", codecs.pcm16_to_float32(line),
                                   narrow_clean, TELEPHONE_RATE, labels, narrow_segments, snr,
                                   "g711", source, kind))
    return turns


def _turn(name, audio, clean, rate, labels, segments, snr, channel, source, noise):
    return EvalTurn(name=name, audio=np.asarray(audio, dtype=np.float32), clean=clean,
                    sample_rate=rate, frame_ms=FRAME_MS, frame_labels=labels,
                    speech_segments=segments, holds=_holds(segments),
                    end_of_speech=segments[-1][1], snr_db=None if snr is None else float(snr),
                    channel=channel, text=source.text, noise=noise, hold_kinds=source.hold_kinds)


def _active_rms(clean, segments):
    active = np.concatenate([clean[s:e] for s, e in segments]).astype(np.float64)
    return math.sqrt(float(np.mean(active ** 2)))


def _mix_at_snr(clean, segments, noise, snr_db):
    """``clean`` plus ``noise`` scaled so active-speech power over noise power is ``snr_db``."""
    speech_power = _active_rms(clean, segments) ** 2
    noise_power = float(np.mean(np.asarray(noise, dtype=np.float64) ** 2))
    return clean + noise * math.sqrt(speech_power / noise_power / 10 ** (snr_db / 10))


def _recorded_turns(recordings, seed):
    beckett, cities = recordings["beckett"], recordings["two_cities"]
    rng = np.random.default_rng([seed, 1000])
    turns = [_recorded_turn("beckett", beckett, (0, len(beckett)), BECKETT_TEXT, rng)]
    for number, span in enumerate(_sentence_pieces(cities), start=1):
        turns.append(_recorded_turn(f"two_cities/{number:02d}", cities, span, None, rng))
    return turns


def _recorded_turn(name, recording, span, text, rng, cut=None):
    """A stretch of a recording, padded with room tone at its own noise level to the lead-in
    and the trailing silence every turn has; with ``cut``, its pause inserted (room tone too)."""
    floor_db, peak_db = _speech_level_thresholds(recording, RATE)
    tone_rms = _room_tone_rms(recording)
    piece = recording[span[0]:span[1]]
    inserted = None
    if cut is not None:
        at = int(round(cut.cut_s * RATE)) - span[0]
        piece, inserted = _with_pause(piece, at, _tone_at_floor(cut.pause_ms * RATE // 1000, floor_db, rng))
    segments = _speech_segments(piece, RATE, floor_db, peak_db)
    lead = max(0, int(LEAD_IN_S * RATE) - segments[0][0])
    trail = max(0, int(TRAILING_S * RATE) - (len(piece) - segments[-1][1]))
    total = _frame_multiple(lead + len(piece) + trail)
    trail = total - lead - len(piece)
    clean = np.concatenate([_coloured_noise("pink", lead, rng) * tone_rms, piece,
                            _coloured_noise("pink", trail, rng) * tone_rms]).astype(np.float32)
    segments = _speech_segments(clean, RATE, floor_db, peak_db)
    inserted = None if inserted is None else (inserted[0] + lead, inserted[1] + lead)
    return _CleanTurn(name, clean, segments, text, _hold_kinds(name, segments, "natural", inserted))


def _tone_at_floor(length, floor_db, rng):
    """Pink noise whose labelled energy (``_block_energy_db``) is the recording's floor: a pause
    as quiet as the reader's own, never mistaken for speech by the labels."""
    tone = _coloured_noise("pink", length, rng)
    level_db = 10 * np.log10(np.mean(10 ** (_block_energy_db(tone, RATE) / 10)))
    return tone * 10 ** ((floor_db - level_db) / 20)


def _room_tone_rms(recording):
    block = RATE * _BLOCK_MS // 1000
    n = len(recording) // block
    power = (recording[: n * block].astype(np.float64).reshape(n, block) ** 2).mean(axis=1)
    return math.sqrt(float(np.percentile(power, 10)))


def _sentence_pieces(recording):
    """Sample spans of a long reading cut in the middle of its long pauses (>= 350 ms)."""
    floor_db, peak_db = _speech_level_thresholds(recording, RATE)
    segments = _speech_segments(recording, RATE, floor_db, peak_db)
    cut_gap = _CUT_PAUSE_MS * RATE // 1000
    pieces, first = [], 0
    for i, (start, end) in enumerate(segments):
        last = i == len(segments) - 1
        gap = len(recording) - end if last else segments[i + 1][0] - end
        long_enough = (end - segments[first][0]) >= _MIN_PIECE_S * RATE
        if last or (gap >= cut_gap and long_enough):
            before = segments[first][0] - (segments[first - 1][1] if first else 0)
            pieces.append((segments[first][0] - min(before // 2, int(LEAD_IN_S * RATE)),
                           end + min(gap // 2, int(0.3 * RATE))))
            first = i + 1
    return pieces


def _scripted_turns(synth):
    turns = []
    for line in SCRIPTED_LINES:
        if line.voice == "piper" and not synth.has_piper:
            continue
        pieces = [np.zeros(int(LEAD_IN_S * RATE), np.float32)]
        for part in line.parts:
            if isinstance(part, str):
                pieces.append(_trimmed(synth.speak(part, line.voice, line.speed)))
            else:
                pieces.append(np.zeros(part * RATE // 1000, np.float32))
        speech = np.concatenate(pieces)
        clean = np.zeros(_frame_multiple(len(speech) + int(TRAILING_S * RATE)), np.float32)
        clean[: len(speech)] = speech
        floor_db, peak_db = _speech_level_thresholds(clean, RATE)
        segments = _speech_segments(clean, RATE, floor_db, peak_db)
        turns.append(_CleanTurn(f"{'piper' if line.voice == 'piper' else 'espeak'}/{line.name}",
                                clean, segments, line.text, ("spliced",) * (len(segments) - 1)))
    return turns


def _cut_turns(recordings, synth, seed):
    """The mid-sentence pauses (``MID_SENTENCE_CUTS``): recordings from their start to the reader's
    next long pause after the cut, and whole Piper utterances (when the voice is fetched)."""
    turns = []
    for number, cut in enumerate(MID_SENTENCE_CUTS):
        name = f"{cut.source}/{cut.name}"
        if cut.source == "piper":
            if synth.has_piper:
                turns.append(_synthesized_cut_turn(name, cut, _trimmed(synth.speak(cut.spoken, "piper", 1.0))))
            continue
        recording = recordings[cut.source]
        span = (int(round(cut.start_s * RATE)), _next_long_pause(recording, int(round(cut.cut_s * RATE))))
        rng = np.random.default_rng([seed, 2000 + number])
        text = cut.spoken if cut.source == "beckett" else None
        turns.append(_recorded_turn(name, recording, span, text, rng, cut))
    return turns


def _next_long_pause(recording, after):
    """The middle of the first pause of at least 350 ms that starts a word or more after ``after``
    (or the recording's end): where a reader's phrase ends."""
    floor_db, peak_db = _speech_level_thresholds(recording, RATE)
    segments = _speech_segments(recording, RATE, floor_db, peak_db)
    cut_gap = _CUT_PAUSE_MS * RATE // 1000
    for (_, end), (next_start, _) in zip(segments, segments[1:] + ((len(recording), None),)):
        if end > after + RATE // 4 and next_start - end >= cut_gap:
            return min(end + (next_start - end) // 2, end + int(0.3 * RATE))
    return len(recording)


def _synthesized_cut_turn(name, cut, speech):
    at = int(round(cut.cut_s * RATE))
    speech, inserted = _with_pause(speech, at, np.zeros(cut.pause_ms * RATE // 1000, np.float32))
    lead = int(LEAD_IN_S * RATE)
    clean = np.zeros(_frame_multiple(lead + len(speech) + int(TRAILING_S * RATE)), np.float32)
    clean[lead: lead + len(speech)] = speech
    floor_db, peak_db = _speech_level_thresholds(clean, RATE)
    segments = _speech_segments(clean, RATE, floor_db, peak_db)
    inserted = (inserted[0] + lead, inserted[1] + lead)
    return _CleanTurn(name, clean, segments, cut.spoken, _hold_kinds(name, segments, "natural", inserted))


def _with_pause(speech, at, pause):
    """``speech`` with ``pause`` inserted at sample ``at``, the speech faded out and in over 5 ms
    around it (no click); returns it and the pause's sample range."""
    fade = np.sin(np.linspace(0.0, np.pi / 2, RATE * _CUT_FADE_MS // 1000)) ** 2
    before, after = np.array(speech[:at], np.float32), np.array(speech[at:], np.float32)
    before[len(before) - len(fade):] *= fade[::-1]
    after[: len(fade)] *= fade
    return np.concatenate([before, pause.astype(np.float32), after]), (at, at + len(pause))


def _hold_kinds(name, segments, kind, inserted):
    """``kind`` for every hold, except ``cut`` for the one holding the inserted pause."""
    kinds = [kind] * (len(segments) - 1)
    if inserted is not None:
        middle = (inserted[0] + inserted[1]) // 2
        holding = [i for i, (start, end) in enumerate(_holds(segments)) if start <= middle < end]
        if not holding:
            raise ValueError(f"{name}: the inserted pause is not a hold; the cut is not at a word boundary")
        kinds[holding[0]] = "cut"
    return tuple(kinds)


def _trimmed(samples):
    """A synthesized phrase without the silence the engine puts around it (below -50 dB of peak)."""
    loud = np.flatnonzero(np.abs(samples) > np.abs(samples).max() * 10 ** (-50 / 20))
    return samples[loud[0]: loud[-1] + 1]


def _frame_multiple(length):
    frame = RATE * FRAME_MS // 1000
    return -(-length // frame) * frame


# --- noise -------------------------------------------------------------------------------------

def _coloured_noise(kind, length, rng):
    """Unit-RMS white noise, or pink-ish noise (-3 dB per octave above 50 Hz)."""
    white = rng.standard_normal(length)
    if length == 0:
        return white
    if kind == "pink":
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(length, 1.0 / RATE)
        spectrum /= np.sqrt(np.maximum(freqs, 50.0))
        white = np.fft.irfft(spectrum, n=length)
    return white / (np.sqrt(np.mean(white ** 2)) + 1e-20)


@cache
def _shared_babble_bed(rate):
    """The babble bed for ``noise_only``, its talkers cached with the set's syntheses."""
    if rate != RATE:
        bed = resample(_shared_babble_bed(RATE), RATE, rate)
        return bed / np.sqrt(np.mean(bed.astype(np.float64) ** 2))
    return _babble_bed(_Synthesizer(models_dir_or_default(None) / ".cache" / "evalset" / "synth", None))


def _babble_bed(synth):
    """Several talkers at once, each looping their own sentences at a random offset: the
    murmur of a call centre or a busy room, unit RMS, at 16 kHz."""
    rng = np.random.default_rng(4242)
    length = int(_BABBLE_BED_S * RATE)
    bed = np.zeros(length)
    for talker in range(_BABBLE_TALKERS):
        order = rng.permutation(len(BABBLE_LINES))
        voice = BABBLE_LINES[talker % len(BABBLE_LINES)][0]
        stream = np.concatenate([np.concatenate([_trimmed(synth.speak(BABBLE_LINES[i][1], voice, 170)),
                                                 np.zeros(RATE // 10, np.float32)]) for i in order])
        stream = np.resize(stream, length)
        stream = stream / (np.sqrt(np.mean(stream.astype(np.float64) ** 2)) + 1e-20)
        bed += np.roll(stream, int(rng.integers(length)))
    return bed / np.sqrt(np.mean(bed ** 2))


def _babble_slice(bed, length, rng):
    start = int(rng.integers(len(bed)))
    return np.take(bed, np.arange(start, start + length), mode="wrap")


# --- synthesis ---------------------------------------------------------------------------------

class _Synthesizer:
    """espeak-ng and the Piper voice, at 16 kHz, each phrase cached on disk by its recipe."""

    def __init__(self, cache_dir, voice_dir):
        self.cache_dir = cache_dir
        self.voice_dir = voice_dir
        self._piper = None

    @property
    def has_piper(self):
        return self.voice_dir is not None

    def speak(self, text, voice, speed):
        recipe = {"text": text, "voice": voice, "speed": speed, "espeak": espeak_version(),
                  "piper": file_identity(self.voice_dir / "model.onnx") if voice == "piper" else None,
                  "vits_noise": 0.0}
        path = self.cache_dir / f"{digest(recipe)[:20]}.npy"
        if path.is_file():
            return np.load(path)
        samples, rate = self._piper_speak(text, speed) if voice == "piper" else _espeak(text, voice, speed)
        samples = resample(samples, rate, RATE)
        atomic_save(path, lambda f: np.save(f, samples))
        return samples

    def _piper_speak(self, text, speed):
        from parley.appliance.models.piper_voice import Voice

        if self._piper is None:
            self._piper = Voice(self.voice_dir, num_threads=1, deterministic=True)
        return self._piper.speak(text, speed)


def _espeak(text, voice, words_per_minute):
    result = subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(words_per_minute)), "--stdout", text],
                            capture_output=True, check=True)
    data = result.stdout
    with wave.open(io.BytesIO(data)) as header:
        rate = header.getframerate()
    payload = data[data.index(b"data") + 8:]
    return np.frombuffer(payload[: len(payload) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0, rate


# --- files -------------------------------------------------------------------------------------

def _file_digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


_TURN_FIELDS = ("name", "sample_rate", "frame_ms", "speech_segments", "holds", "end_of_speech",
                "snr_db", "channel", "text", "noise", "hold_kinds")


def _save_set(path, turns):
    arrays, meta, shared = {}, [], {}
    for i, turn in enumerate(turns):
        arrays[f"audio{i}"] = turn.audio
        clean_key = shared.setdefault(id(turn.clean), f"clean{len(shared)}")
        labels_key = shared.setdefault(id(turn.frame_labels), f"labels{len(shared)}")
        arrays[clean_key], arrays[labels_key] = turn.clean, turn.frame_labels
        meta.append({**{f: getattr(turn, f) for f in _TURN_FIELDS}, "clean": clean_key, "labels": labels_key})
    save_npz(path, arrays, meta)


def _load_set(path):
    meta, loaded = load_npz(path)
    turns = []
    for i, entry in enumerate(meta):
        fields = {f: entry[f] for f in _TURN_FIELDS}
        fields["speech_segments"] = tuple(tuple(s) for s in fields["speech_segments"])
        fields["holds"] = tuple(tuple(h) for h in fields["holds"])
        fields["hold_kinds"] = tuple(fields["hold_kinds"])
        turns.append(EvalTurn(audio=loaded[f"audio{i}"], clean=loaded[entry["clean"]],
                              frame_labels=loaded[entry["labels"]], **fields))
    return turns
