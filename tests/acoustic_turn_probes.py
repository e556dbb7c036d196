"""Caller turns that ended and turns cut off mid-sentence, for probing the acoustic end-of-turn model.

Each probe is the audio an endpointer would hand over: everything up to ``action_delay_ms`` of
silence after the last word. Three groups:

* ``complete``: the speaker finished (Beckett's sentences, the last sentence of the Tale of Two
  Cities paragraph, espeak-ng questions and statements a caller would say).
* ``incomplete``: the turn is not over: real mid-sentence pauses in two_cities (the reader
  breathes and goes on), real speech cut at a word boundary mid-sentence, and espeak-ng
  fragments ("My order number is"), each followed by silence.
* ``clause``: two_cities' list clauses ("it was the worst of times,") that sound final but
  the sentence goes on. Reported, never asserted on: even people disagree about these.

Cut points were found from the recordings' energy envelope (10 ms frames) and checked by
transcribing ``audio[:cut]`` with Whisper tiny.en: the last word is the one named.
Variants add what a phone line adds and what flipped a verdict in MODELS.md (inaudible dither).
Needs Debian ``sox`` (resampling) and ``espeak-ng``.
"""

import shutil
import subprocess
from dataclasses import dataclass

import numpy as np

from parley.core.acoustic_turn import AcousticTurnSettings

RATE = 16000
ACTION_DELAY_S = AcousticTurnSettings().action_delay_ms / 1000

# (label, last second of speech) in beckett.wav; each probe starts at 0 s.
BECKETT_ENDS = [
    ("Ever tried.", 1.50), ("…Ever failed.", 2.85), ("…No matter.", 4.11),
    ("…Try again.", 5.51), ("…Fail again.", 7.46), ("…Fail better.", 9.42),
]
# (label, start, last second of speech) in two_cities.wav.
TWO_CITIES_END = [("…in the superlative degree of comparison only.", 38.50, 41.62)]
TWO_CITIES_HOLDS = [
    ("In short, [pause]", 26.40, 29.60),
    ("…the period was so far like the present period, [pause]", 28.90, 32.22),
    ("…insisted on its being received, [pause]", 29.80, 36.48),
    ("…for good or for evil, [pause]", 32.70, 38.33),
]
TWO_CITIES_CLAUSES = [
    ("It was the best of times, it was the worst of times,", 0.0, 4.54),
    ("…it was the age of foolishness,", 4.90, 8.18),
    ("…it was the season of darkness,", 13.30, 16.67),
    ("…it was the winter of despair,", 17.40, 20.45),
    ("…we were all going direct the other way —", 24.50, 28.26),
]
# (label, start, cut) in two_cities.wav / beckett.wav: cut at a word boundary, then room tone.
TWO_CITIES_CUTS = [
    ("It was the | best of times", 0.0, 1.71),
    ("It was the age of | wisdom", 4.90, 5.73),
    ("We had everything before | us", 21.10, 22.08),
    ("…so far like the | present period", 28.90, 31.48),
    ("in the superlative | degree", 38.50, 39.86),
]
BECKETT_CUTS = [("…Fail again. Fail | better", 0.0, 8.47)]
TWO_CITIES_ROOM_TONE = (4.60, 4.95)
BECKETT_ROOM_TONE = (5.65, 6.55)

ESPEAK_COMPLETE = [
    "What is the status of my order?",
    "Can you help me with a refund?",
    "I want to return my shoes.",
    "Thank you, that is all.",
]
ESPEAK_INCOMPLETE = [
    "My order number is",
    "I would like to",
    "Can you tell me whether the",
    "I ordered it on",
]


@dataclass(frozen=True)
class Probe:
    group: str
    label: str
    audio: np.ndarray


def tools_missing():
    """The Debian tools the probes need and this machine lacks."""
    return [tool for tool in ("sox", "espeak-ng") if shutil.which(tool) is None]


def sox_to_16k(source, *input_options, rate=RATE):
    """Audio (a path, or WAV bytes on stdin) resampled by sox to float32 at ``rate``, no dither."""
    path, stdin = (str(source), None) if not isinstance(source, bytes) else ("-", source)
    command = ["sox", *input_options, path, "-D", "-r", str(rate), "-e", "signed", "-b", "16", "-t", "raw", "-"]
    pcm = subprocess.run(command, input=stdin, capture_output=True, check=True).stdout
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0


def espeak(text):
    """espeak-ng's US voice saying ``text``, at 16 kHz, trailing silence trimmed."""
    wav = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", text], capture_output=True, check=True).stdout
    audio = sox_to_16k(wav, "-t", "wav")
    voiced = np.flatnonzero(np.abs(audio) > 1e-3)
    return audio[: voiced[-1] + 1]


def _seconds(audio, start, end):
    return audio[int(start * RATE): int(end * RATE)]


def _then_silence(speech, room_tone):
    """Speech followed by ``ACTION_DELAY_S`` of the recording's own room tone (or digital silence)."""
    tail = int(ACTION_DELAY_S * RATE)
    silence = np.resize(room_tone, tail) if room_tone is not None else np.zeros(tail, np.float32)
    return np.concatenate([speech, silence]).astype(np.float32)


def build_probes(models_dir):
    """All probes, clean, in a fixed order."""
    beckett = sox_to_16k(models_dir / "beckett" / "beckett.wav")
    cities = sox_to_16k(models_dir / "two-cities" / "two_cities.wav")
    cities_tone = _seconds(cities, *TWO_CITIES_ROOM_TONE)
    beckett_tone = _seconds(beckett, *BECKETT_ROOM_TONE)

    def ended(audio, start, end):
        return _seconds(audio, start, end + ACTION_DELAY_S)

    def cut(audio, start, end, room_tone):
        return _then_silence(_seconds(audio, start, end), room_tone)

    return [
        *(Probe("complete", f"beckett: {label}", ended(beckett, 0.0, end)) for label, end in BECKETT_ENDS),
        *(Probe("complete", f"two_cities: {label}", ended(cities, start, end)) for label, start, end in TWO_CITIES_END),
        *(Probe("complete", f"espeak: {text}", _then_silence(espeak(text), None)) for text in ESPEAK_COMPLETE),
        *(Probe("incomplete", f"two_cities: {label}", ended(cities, start, end)) for label, start, end in TWO_CITIES_HOLDS),
        *(Probe("incomplete", f"two_cities cut: {label}", cut(cities, start, end, cities_tone)) for label, start, end in TWO_CITIES_CUTS),
        *(Probe("incomplete", f"beckett cut: {label}", cut(beckett, start, end, beckett_tone)) for label, start, end in BECKETT_CUTS),
        *(Probe("incomplete", f"espeak: {text} …", _then_silence(espeak(text), None)) for text in ESPEAK_INCOMPLETE),
        *(Probe("clause", f"two_cities: {label}", ended(cities, start, end)) for label, start, end in TWO_CITIES_CLAUSES),
    ]


def dithered(audio, seed):
    """Triangular dither of one 16-bit step, as sox adds when it writes 16-bit audio: inaudible."""
    rng = np.random.default_rng(seed)
    return (audio + (rng.random(audio.size) - rng.random(audio.size)) / 32768.0).astype(np.float32)


def with_noise(audio, snr_db, seed):
    """White noise ``snr_db`` below the speech (RMS over samples above -50 dBFS)."""
    rng = np.random.default_rng(seed)
    voiced = audio[np.abs(audio) > 10 ** (-50 / 20)]
    level = np.sqrt(np.mean(np.square(voiced))) * 10 ** (-snr_db / 20)
    return (audio + rng.standard_normal(audio.size) * level).astype(np.float32)


def over_the_phone(audio):
    """16 kHz -> 8 kHz G.711 mu-law -> 16 kHz, as a desk phone call hears it (sox, no dither)."""
    raw = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
    pcm16_in = ["-t", "raw", "-r", str(RATE), "-e", "signed", "-b", "16", "-c", "1", "-"]
    ulaw_out = ["-D", "-r", "8000", "-e", "u-law", "-t", "raw", "-"]
    ulaw = subprocess.run(["sox", *pcm16_in, *ulaw_out], input=raw, capture_output=True, check=True).stdout
    back = sox_to_16k(ulaw, "-t", "raw", "-r", "8000", "-e", "u-law", "-c", "1")
    return back[: audio.size]


VARIANTS = {
    "clean": lambda audio: audio,
    "dither 1": lambda audio: dithered(audio, 1),
    "dither 2": lambda audio: dithered(audio, 2),
    "noise 20 dB": lambda audio: with_noise(audio, 20, 3),
    "phone 8k ulaw": over_the_phone,
}
"""Each variant of a probe; ``clean`` and the dithers must not change what a listener hears."""
