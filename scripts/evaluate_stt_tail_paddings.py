"""Choose Whisper's ``tail_paddings`` by measurement on short telephone turns.

sherpa-onnx encodes only the real length of a clip plus ``tail_paddings`` zero frames (10 ms
each; -1 and 0 both mean 1000), so fewer frames cost less encoder time, but too few and Whisper
may not find the end of the text, or invents sounds ("(buzzer)"). This script speaks caller
lines with the Piper voice (deterministic) and with espeak-ng, sends them down a telephone line
(pre-roll and hangover silence as the endpointer cuts a turn, 8 kHz, G.711 mu-law and back),
adds the real recording beckett.wav the same way, transcribes every turn with each setting
through ``Recognizer.transcribe(samples, 8000)`` (the worker's path) and prints a table:
corpus WER (``parley.appliance.speech.scoring``), turns with sound annotations (hallucinations,
dropped from the text), and compute time per turn (the fastest of ``--repeats`` runs; settings
interleaved, so other load on the machine hits them alike). Each setting runs as the product runs
it, with ``retry_tail_paddings`` (a decode that hits Whisper's token limit is redone with 1000),
and once without, to show what the retry buys.

    .venv/bin/python scripts/evaluate_stt_tail_paddings.py [--paddings -1 500 ...] [--repeats 2] [--show-errors]
"""

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parley.appliance.config import load_settings
from parley.appliance.speech.audio import resample
from parley.appliance.speech.scoring import word_error_rate, word_errors
from parley.appliance.speech.stt import Recognizer, RecognizerSettings
from parley.core import codecs
from parley.core._audio_sets import read_wav

CALLER_LINES = (
    "Hi, I'm calling about my order.",
    "My order number is 4 5 1 2 7.",
    "I want a refund.",
    "Yes please.",
    "No, that's not right.",
    "My name is Sarah Johnson.",
    "It's 42 Elm Street, Springfield.",
    "Can I speak to a manager?",
    "The parcel never arrived.",
    "I was charged twice for the same thing.",
    "Could you repeat that please?",
    "I'd like to cancel my subscription.",
    "The tracking number is 7 7 0 9 3 1.",
    "It was delivered to the wrong address.",
    "Thank you, that's all.",
    "Hold on a second.",
    "The blue jacket, size medium.",
    "I ordered it on the third of March.",
    "Can you send me a replacement?",
    "My account number is 8 3 0 5 5 1.",
    "Yes, that's correct.",
    "How long will the refund take?",
    "The total was 59 dollars.",
    "I'm not happy with the service.",
    "Okay, go ahead.",
    "It arrived broken.",
    "Can I change the delivery date?",
    "My postcode is S W 1 A 1 A A.",
    "No.",
    "Please call me back on 0 7 7 0 0 9 0 0 1 2 3.",
)
"""What support callers say: short turns with order numbers, names, addresses, yes and no."""

ESPEAK_VOICES = (("en-us", 165), ("en-us+m3", 160), ("en-gb+f2", 170), ("en-us+f4", 175), ("en-gb", 155), ("en-us+m7", 180))
PIPER_SPEEDS = (1.0, 0.95, 1.05)
PRE_ROLL_S, HANGOVER_S = 0.3, 0.7
"""Silence before and after the words, as the endpointer's defaults cut a turn ended by silence."""
SPEECH_RMS_DBFS, LINE_NOISE_DBFS = -20.0, -60.0
TELEPHONE_RATE = 8000
DEFAULT_PADDINGS = (-1, 500, 300, 200, 100, 50, 20, 10)


@dataclass(frozen=True)
class Turn:
    name: str
    source: str
    """``piper``, ``espeak`` or ``recorded``."""
    text: str
    audio: np.ndarray
    """8 kHz float32, after the telephone line."""


def espeak(text, voice, words_per_minute):
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "--stdout", text],
                         capture_output=True, check=True).stdout
    rate = int.from_bytes(wav[24:28], "little")
    payload = wav[wav.index(b"data") + 8:]
    return np.frombuffer(payload[: len(payload) // 2 * 2], "<i2").astype(np.float32) / 32768, rate


def telephone(samples, rate, rng):
    """Pre-roll and hangover silence, speech at a telephone level over faint line noise, then
    8 kHz G.711 mu-law encoded and decoded."""
    active = samples[np.abs(samples) > 0.02 * np.abs(samples).max()]
    gain = 10 ** (SPEECH_RMS_DBFS / 20) / np.sqrt(np.mean(active ** 2))
    padded = np.concatenate([np.zeros(int(PRE_ROLL_S * rate)), samples * gain, np.zeros(int(HANGOVER_S * rate))])
    narrow = resample(padded.astype(np.float32), rate, TELEPHONE_RATE)
    narrow = narrow + rng.normal(0, 10 ** (LINE_NOISE_DBFS / 20), len(narrow)).astype(np.float32)
    line = codecs.ulaw_decode(codecs.ulaw_encode(codecs.float32_to_pcm16(np.ascontiguousarray(narrow, np.float32))))
    return codecs.pcm16_to_float32(line)


def build_turns(models_dir):
    rng = np.random.default_rng(0)
    turns = []
    voice_dir = models_dir / "voice-en_US-joe-medium"
    if (voice_dir / "model.onnx").is_file():
        from parley.appliance.models.piper_voice import Voice

        piper = Voice(voice_dir, num_threads=1, deterministic=True)
        for i, line in enumerate(CALLER_LINES):
            samples, rate = piper.speak(line, PIPER_SPEEDS[i % len(PIPER_SPEEDS)])
            turns.append(Turn(f"piper/{i:02d}", "piper", line, telephone(samples, rate, rng)))
    else:
        print(f"note: {voice_dir} not fetched, Piper turns left out", file=sys.stderr)
    for i, line in enumerate(CALLER_LINES):
        voice, speed = ESPEAK_VOICES[i % len(ESPEAK_VOICES)]
        samples, rate = espeak(line, voice, speed)
        turns.append(Turn(f"espeak/{i:02d}", "espeak", line, telephone(samples, rate, rng)))
    for path in sorted(models_dir.glob("**/beckett.wav")):
        samples, rate = read_wav(path)
        text = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."
        turns.append(Turn("recorded/beckett", "recorded", text, telephone(samples, rate, rng)))
        break
    return turns


def measure(turns, paddings, repeats, num_threads, model_dir, retry):
    """Every turn with every padding, ``repeats`` times (settings interleaved); the transcripts
    and, per turn, the fastest time."""
    recognizers = {p: Recognizer.from_dir(model_dir, RecognizerSettings(
        num_threads=num_threads, tail_paddings=p, retry_tail_paddings=retry)) for p in paddings}
    for recognizer in recognizers.values():  # first-run allocations out of the timings
        recognizer.transcribe(turns[0].audio, TELEPHONE_RATE)
    seconds = {p: np.full((repeats, len(turns)), np.inf) for p in paddings}
    results = {}
    for r in range(repeats):
        for i, turn in enumerate(turns):
            for p in paddings:
                started = time.perf_counter()
                results[p, i] = recognizers[p].transcribe(turn.audio, TELEPHONE_RATE)
                seconds[p][r, i] = time.perf_counter() - started
    return results, {p: s.min(axis=0) for p, s in seconds.items()}


def report(turns, paddings, plain, retried, seconds, show_errors):
    """One row per padding: WER by source with the retry (what the product runs), WER of the first
    decode alone, turns retried, turns with sound annotations, empty turns, time with the retry."""
    sources = [s for s in ("piper", "espeak", "recorded") if any(t.source == s for t in turns)]
    header = ["tail_paddings", *[f"WER {s}" for s in sources], "WER all", "WER no retry", "retried",
              "annotated", "empty", "mean ms", "p95 ms"]
    rows = []
    for p in paddings:
        def wer(results, source=None):
            pairs = [(t.text, results[p, i].text) for i, t in enumerate(turns) if source in (None, t.source)]
            return f"{100 * word_error_rate(pairs):.1f}%"

        annotated = sum(bool(retried[p, i].dropped) for i in range(len(turns)))
        empty = sum(not retried[p, i].text for i in range(len(turns)))
        ms = 1000 * seconds[p]
        rows.append([f"{p} (=1000)" if p == -1 else str(p), *[wer(retried, s) for s in sources], wer(retried),
                     wer(plain), str(sum(retried[p, i].retried for i in range(len(turns)))), str(annotated),
                     str(empty), f"{ms.mean():.0f}", f"{np.percentile(ms, 95):.0f}"])
        if show_errors:
            for i, t in enumerate(turns):
                for mode, results in (("first", plain), ("retry", retried)):
                    errors, n = word_errors(t.text, results[p, i].text)
                    if errors or results[p, i].dropped:
                        print(f"  [{p} {mode}] {t.name}: {errors}/{n} ref={t.text!r} hyp={results[p, i].text!r} "
                              f"dropped={results[p, i].dropped}", file=sys.stderr)
    widths = [max(len(header[c]), *(len(r[c]) for r in rows)) for c in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(v.rjust(w) for v, w in zip(row, widths)) + " |")
    audio = [len(t.audio) / TELEPHONE_RATE for t in turns]
    print(f"\n{len(turns)} turns ({', '.join(f'{sum(t.source == s for t in turns)} {s}' for s in sources)}), "
          f"{np.mean(audio):.2f} s mean / {np.max(audio):.2f} s max with {PRE_ROLL_S} s pre-roll and {HANGOVER_S} s "
          f"hangover, 8 kHz G.711; time = fastest of the repeats per turn, with the retry")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paddings", type=int, nargs="+", default=DEFAULT_PADDINGS)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=RecognizerSettings.num_threads)
    parser.add_argument("--model", type=Path, help="STT model directory (default models/whisper-tiny.en)")
    parser.add_argument("--show-errors", action="store_true", help="print every turn with an error, per setting")
    args = parser.parse_args(argv)
    models_dir = load_settings().models_dir
    turns = build_turns(models_dir)
    model_dir = args.model or models_dir / "whisper-tiny.en"
    plain, _ = measure(turns, args.paddings, 1, args.threads, model_dir, retry=None)
    retried, seconds = measure(turns, args.paddings, args.repeats, args.threads, model_dir,
                               retry=RecognizerSettings.retry_tail_paddings)
    report(turns, args.paddings, plain, retried, seconds, args.show_errors)


if __name__ == "__main__":
    main()
