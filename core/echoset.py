"""The barge-in evaluation set: the agent's voice played out, its echo at the mic, and callers
talking over it at a known onset.

The agent's lines are spoken by the Piper voice through sherpa-onnx, as the appliance speaks.
The mic hears that reference through an echo path (delayed, filtered like a handset or a line,
attenuated by the echo return loss, plus a little line noise) and, in half the cases, a caller
who starts talking at ``caller_onset`` (espeak-ng lines and beckett.wav). Offline work, cached
under ``<models_dir>/.cache/echoset/``; none of it is the real-time path.
"""

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parley.core._audio_sets import (atomic_save, digest, espeak_version, file_identity, load_npz, models_dir_or_default,
                                     read_wav, save_npz)

from parley.core.evalset import resample

RATE = 16000
"""Sample rate of every case: the wideband call rate."""
ERLS_DB = (6.0, 10.0, 20.0)
"""Echo return losses: 6 dB is the worst a line should have (G.168), 20 dB a good handset."""
DELAYS_MS = (20, 60, 120)
"""Echo delays: a local handset, a long line, a VoIP path with buffering."""
PATHS = ("lowpass", "bandpass")
"""Echo path colour: a handset's low-pass (3.4 kHz) or a telephone line's band-pass (300-3400 Hz)."""
CALLER_LEVELS_DB = (-6.0, 0.0)
"""Range of the caller's speech level relative to the agent's reference (drawn per case)."""
CALLER_ONSET_S = (2.0, 3.0)
"""Range of the caller's onset after the agent starts: barge-in comes once the agent is talking."""
NOISE_BELOW_REFERENCE_DB = 45.0
"""Line noise at the mic, below the reference's speech level."""
LEAD_IN_S = 0.2
"""Silence before the agent's first word."""
RECIPE_VERSION = 3
"""Bump when the construction changes, so cached sets are rebuilt."""

AGENT_LINES = (
    "Thank you for calling Acme. I can help you with orders, refunds and returns. "
    "What can I do for you today?",
    "Your order number four two seven shipped on Monday, and it should arrive by Thursday "
    "afternoon. Would you like me to text you the tracking link?",
    "Our returns policy lets you send back any unused item within thirty days of delivery, "
    "for a full refund to your original payment method.",
)
"""What the agent says: a greeting, an order status and a policy, each several seconds long."""
CALLER_LINES = (
    ("espeak", "en-us", "Sorry, can I stop you there?"),
    ("espeak", "en-us+f3", "No, no, that is not what I asked."),
    ("beckett", None, "Ever tried. Ever failed."),
)
"""What callers say over the agent: espeak-ng voices, and a real recording."""
_BECKETT_SPAN_S = (0.0, 2.6)


@dataclass(frozen=True)
class EchoCase:
    """One stretch of agent speech as the barge-in detector hears it, with the truth."""

    name: str
    """``<line>/<path>/erl<dB>/delay<ms>/<echo-only|caller-<n>>``."""
    far: np.ndarray
    """float32 mono: the reference, what playout sent to the caller."""
    near: np.ndarray
    """float32 mono, same length: the mic, the echo of ``far`` plus noise (plus the caller)."""
    sample_rate: int
    """16000."""
    erl_db: float
    """Echo return loss: the echo's speech level below the reference's."""
    delay_ms: int
    """Delay of the echo path."""
    caller_onset: int | None
    """Sample where the caller starts talking (their first 10 ms within 20 dB of their loudest);
    None for echo-only cases."""

    @property
    def duration_s(self):
        return len(self.far) / self.sample_rate


def build_echo_set(models_dir=None, seed=0):
    """Every agent line through every echo path, echo only and with a caller; cached.

    Deterministic for a given ``seed``. Needs the Piper voice, beckett.wav and espeak-ng.
    """
    models_dir = models_dir_or_default(models_dir)
    voice_dir = models_dir / "voice-en_US-joe-medium"
    beckett = models_dir / "beckett" / "beckett.wav"
    for path in (voice_dir / "model.onnx", voice_dir / "tokens.txt", beckett):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not fetched: run `parley models fetch --for test`")
    recipe = {
        "version": RECIPE_VERSION, "seed": int(seed), "espeak": espeak_version(),
        "voice": file_identity(voice_dir / "model.onnx"), "beckett": file_identity(beckett),
        "agent": list(AGENT_LINES), "callers": [list(line) for line in CALLER_LINES],
        "erls": list(ERLS_DB), "delays": list(DELAYS_MS), "paths": list(PATHS),
        "levels": list(CALLER_LEVELS_DB), "onsets": list(CALLER_ONSET_S),
    }
    cache_dir = models_dir / ".cache" / "echoset"
    cached = cache_dir / f"set-{digest(recipe)[:20]}.npz"
    if cached.is_file():
        return _load_set(cached)
    agent = [_agent_line(text, voice_dir, cache_dir) for text in AGENT_LINES]
    callers = [_caller_line(line, beckett, cache_dir) for line in CALLER_LINES]
    cases = _build(agent, callers, seed)
    _save_set(cached, cases)
    return cases


def _build(agent, callers, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for line_index, speech in enumerate(agent):
        far = np.concatenate([np.zeros(int(LEAD_IN_S * RATE), np.float32), speech]).astype(np.float32)
        reference_level = _active_rms(far)
        for path_index, path in enumerate(PATHS):
            for erl_index, erl in enumerate(ERLS_DB):
                for delay_index, delay in enumerate(DELAYS_MS):
                    echo = _echo(far, path, delay, erl, reference_level)
                    noise = rng.standard_normal(len(far)) * reference_level * 10 ** (-NOISE_BELOW_REFERENCE_DB / 20)
                    near = echo + noise
                    stem = f"line{line_index}/{path}/erl{erl:g}/delay{delay}"
                    cases.append(EchoCase(f"{stem}/echo-only", far, near.astype(np.float32), RATE, erl, delay, None))
                    # Every caller meets every delay, ERL and path across the lines.
                    caller_index = (line_index + path_index + erl_index + delay_index) % len(callers)
                    onset = int((LEAD_IN_S + rng.uniform(*CALLER_ONSET_S)) * RATE)
                    level = reference_level * 10 ** (rng.uniform(*CALLER_LEVELS_DB) / 20)
                    caller = callers[caller_index] * (level / _active_rms(callers[caller_index]))
                    talked_over = near.copy()
                    end = min(len(far), onset + len(caller))
                    talked_over[onset:end] += caller[: end - onset]
                    cases.append(EchoCase(f"{stem}/caller-{caller_index}", far, talked_over.astype(np.float32),
                                          RATE, erl, delay, onset))
    return cases


def _echo(far, path, delay_ms, erl_db, reference_level):
    """``far`` through the echo path, scaled so its speech level is ``erl_db`` below the reference."""
    taps = _lowpass(3400 / RATE)
    if path == "bandpass":
        taps = taps - _lowpass(300 / RATE)
    filtered = np.convolve(far, taps)[len(taps) // 2: len(taps) // 2 + len(far)]
    delay = int(delay_ms * RATE // 1000)
    echo = np.concatenate([np.zeros(delay), filtered[: len(far) - delay]])
    return echo * (reference_level * 10 ** (-erl_db / 20) / _active_rms(echo))


def _lowpass(cutoff, half=64):
    """Windowed-sinc low-pass FIR, ``cutoff`` in cycles per sample, unit gain at DC."""
    n = np.arange(-half, half + 1)
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(len(n))
    return taps / taps.sum()


def _active_rms(x):
    """RMS over the 20 ms frames within 30 dB of the loudest: the speech level, not the pauses."""
    frames = x[: len(x) // 320 * 320].reshape(-1, 320).astype(np.float64)
    energy = (frames ** 2).mean(axis=1)
    return float(np.sqrt(energy[energy > energy.max() * 1e-3].mean()))


def _trimmed(samples, within_db=20.0):
    """Cut the clip to its first and last 10 ms block within ``within_db`` of its loudest block,
    so a caller's onset (where the clip is placed) is where speech starts, not a breath or room tone."""
    block = RATE // 100
    blocks = samples[: len(samples) // block * block].reshape(-1, block).astype(np.float64)
    energy = (blocks ** 2).mean(axis=1)
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (-within_db / 10))
    return samples[loud[0] * block: (loud[-1] + 1) * block]


# --- speech sources -----------------------------------------------------------------------------

def _agent_line(text, voice_dir, cache_dir):
    path = cache_dir / "agent" / f"{digest([RECIPE_VERSION, text, file_identity(voice_dir / 'model.onnx')])[:20]}.npy"
    if path.is_file():
        return np.load(path)
    from parley.appliance.models.piper_voice import Voice

    samples, rate = Voice(voice_dir).speak(text)
    speech = _trimmed(resample(samples, rate, RATE))
    atomic_save(path, lambda f: np.save(f, speech))
    return speech


def _caller_line(line, beckett, cache_dir):
    source, voice, text = line
    if source == "beckett":
        recording, rate = read_wav(beckett)
        start, end = (int(s * rate) for s in _BECKETT_SPAN_S)
        return _trimmed(resample(recording[start:end], rate, RATE))
    path = cache_dir / "caller" / f"{digest([RECIPE_VERSION, voice, text, espeak_version()])[:20]}.npy"
    if path.is_file():
        return np.load(path)
    samples, rate = _espeak(text, voice)
    speech = _trimmed(resample(samples, rate, RATE))
    atomic_save(path, lambda f: np.save(f, speech))
    return speech


def _espeak(text, voice):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "line.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], capture_output=True, check=True)
        return read_wav(out)


# --- files --------------------------------------------------------------------------------------

_CASE_FIELDS = ("name", "sample_rate", "erl_db", "delay_ms", "caller_onset")


def _save_set(path, cases):
    arrays, meta, fars = {}, [], {}
    for i, case in enumerate(cases):
        far_key = fars.setdefault(id(case.far), f"far{len(fars)}")
        arrays[far_key], arrays[f"near{i}"] = case.far, case.near
        meta.append({**{f: getattr(case, f) for f in _CASE_FIELDS}, "far": far_key})
    save_npz(path, arrays, meta)


def _load_set(path):
    meta, loaded = load_npz(path)
    return [EchoCase(far=loaded[entry["far"]], near=loaded[f"near{i}"], **{f: entry[f] for f in _CASE_FIELDS})
            for i, entry in enumerate(meta)]
