"""Frame-level VAD figures on the core's evaluation set, every detector in the same run.

Definitions (/work/shared/EVALUATION.md, "Voice activity"): each turn is cut into 20 ms frames
labelled from its clean signal; a detector's per-frame speech decisions are pooled over all
turns of a condition (clean, 20, 10, 5, 0 dB SNR; wideband 16 kHz and 8 kHz G.711) into
precision, recall and F1. Every detector decides causally: a frame's decision uses audio up to
the frame's end only. Per detector:

* stage (a): ``NoiseFloorVad``; SPEECH is speech, UNSURE counts as speech when its score >= 0.5.
* two-stage: ``TwoStageVad`` with the default settings (Silero only on UNSURE frames), and with
  ``confirm="always"``; "silero %" is the share of frames on which Silero ran.
* Silero alone: every 32 ms window scored, Silero's hysteresis (0.5 / 0.35); a frame takes the
  latest window that ended by the frame's end.
* webrtcvad modes 0-3: ``is_speech`` on each 20 ms frame (PCM16, at the turn's rate).
* TEN VAD: 10 ms hops at 16 kHz (G.711 turns upsampled offline), a frame takes its last hop's flag.

Cost: CPU time per 20 ms frame over the whole set, single stream, on this machine, in this run
(it still drifts on a shared box: compare within a run; ``scripts/callgrind_vad.py`` counts
instructions instead). Run: ``.venv/bin/python scripts/evaluate_vad.py``.
"""

import argparse
import time
from collections import defaultdict

import numpy as np

from parley.appliance.config import load_settings
from parley.core import codecs, evalset, silero, vad


def stage_a(turn, _tools):
    detector = vad.NoiseFloorVad(turn.sample_rate, turn.frame_ms)
    size = turn.sample_rate * turn.frame_ms // 1000
    out = np.zeros(len(turn.frame_labels), dtype=bool)
    for k in range(len(out)):
        decision = detector.process(turn.audio[k * size:(k + 1) * size])
        out[k] = decision == vad.SPEECH or (decision == vad.UNSURE and detector.score >= 0.5)
    return out, {}


def two_stage(confirm):
    def run(turn, tools):
        detector = vad.TwoStageVad(tools["silero"], turn.sample_rate, turn.frame_ms, vad.VadSettings(confirm=confirm))
        size = turn.sample_rate * turn.frame_ms // 1000
        out = np.zeros(len(turn.frame_labels), dtype=bool)
        for k in range(len(out)):
            out[k] = detector.process(turn.audio[k * size:(k + 1) * size])
        return out, {"confirmed": detector.frames_confirmed, "windows": detector.windows_scored}
    return run


def silero_alone(turn, tools):
    model = tools["silero"]
    stream = model.new_stream(turn.sample_rate)
    window = stream.window_size
    size = turn.sample_rate * turn.frame_ms // 1000
    out = np.zeros(len(turn.frame_labels), dtype=bool)
    speech, scored = False, 0
    for k in range(len(out)):
        end = (k + 1) * size
        while (scored + 1) * window <= end:
            prob = model.score(stream, turn.audio[scored * window:(scored + 1) * window])
            speech = prob >= (silero.SILENCE_THRESHOLD if speech else silero.SPEECH_THRESHOLD)
            scored += 1
        out[k] = speech
    return out, {}


def webrtc(mode):
    def run(turn, _tools):
        import webrtcvad

        detector = webrtcvad.Vad(mode)
        size = turn.sample_rate * turn.frame_ms // 1000
        pcm = codecs.float32_to_pcm16(turn.audio).tobytes()
        out = np.zeros(len(turn.frame_labels), dtype=bool)
        for k in range(len(out)):
            out[k] = detector.is_speech(pcm[2 * k * size:2 * (k + 1) * size], turn.sample_rate)
        return out, {}
    return run


def ten_vad(turn, _tools):
    from ten_vad import TenVad

    audio = turn.audio if turn.sample_rate == 16000 else evalset.resample(turn.audio, turn.sample_rate, 16000)
    pcm = codecs.float32_to_pcm16(audio)
    detector = TenVad(160, 0.5)
    hops = 16000 * turn.frame_ms // 1000 // 160
    out = np.zeros(len(turn.frame_labels), dtype=bool)
    for k in range(len(out)):
        for h in range(hops):
            start = (k * hops + h) * 160
            _, flag = detector.process(pcm[start:start + 160])
        out[k] = flag == 1
    return out, {}


def detectors(include_ten):
    table = {"stage (a)": stage_a, "two-stage": two_stage("unsure"), "two-stage always": two_stage("always"),
             "silero alone": silero_alone}
    try:
        import webrtcvad  # noqa: F401

        table.update({f"webrtcvad {m}": webrtc(m) for m in range(4)})
    except ImportError:
        print("webrtcvad not installed: pip install webrtcvad-wheels==2.0.14.post1")
    if include_ten:
        try:
            from ten_vad import TenVad

            TenVad(160, 0.5)
            table["ten vad"] = ten_vad
        except (ImportError, OSError) as exc:
            print(f"TEN VAD unavailable ({exc}): pip install ten-vad==1.0.6.9; apt-get install libc++1")
    return table


def condition(turn):
    return (turn.channel, "clean" if turn.snr_db is None else f"{turn.snr_db:g} dB")


def condition_order(cond):
    """Wideband before G.711; clean first, then from the highest SNR down."""
    channel, snr = cond
    return channel != "wideband", snr != "clean", -float(snr.split()[0]) if snr != "clean" else 0.0


def scores(counts):
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", default="", help="only turns whose name contains this")
    parser.add_argument("--only", default="", help="only detectors whose name contains this")
    parser.add_argument("--no-ten", action="store_true", help="leave TEN VAD out")
    args = parser.parse_args()
    models_dir = load_settings().models_dir
    turns = [t for t in evalset.build_turn_set(models_dir) if args.turns in t.name]
    tools = {"silero": silero.SileroVad(models_dir / "silero-vad" / "silero_vad.onnx")}
    table = {name: run for name, run in detectors(not args.no_ten).items() if args.only in name}
    counts = defaultdict(lambda: defaultdict(int))
    seconds, frames = defaultdict(float), defaultdict(int)
    for name, run in table.items():
        for turn in turns:
            start = time.process_time()
            decided, extra = run(turn, tools)
            seconds[name] += time.process_time() - start
            frames[name] += len(decided)
            truth = turn.frame_labels
            for key in (condition(turn), (condition(turn), turn.noise)):
                cell = counts[(name, key)]
                cell["tp"] += int(np.sum(decided & truth))
                cell["fp"] += int(np.sum(decided & ~truth))
                cell["fn"] += int(np.sum(~decided & truth))
                cell["confirmed"] += extra.get("confirmed", 0)
                cell["windows"] += extra.get("windows", 0)
                cell["frames"] += len(decided)
    conditions = sorted({condition(t) for t in turns}, key=condition_order)
    total_s = sum(t.duration_s for t in turns)
    print(f"{len(turns)} turns, {total_s:.0f} s of audio, {sum(len(t.frame_labels) for t in turns)} frames "
          f"of {turns[0].frame_ms} ms; speech frames {np.mean(np.concatenate([t.frame_labels for t in turns])):.1%}")
    print("\nF1 per condition")
    header = f"{'detector':<18}" + "".join(f"{c[0][:4]} {c[1]:>6}".rjust(13) for c in conditions)
    print(header)
    for name in table:
        print(f"{name:<18}" + "".join(f"{scores(counts[(name, c)])[2]:13.3f}" for c in conditions))
    print("\nprecision / recall per condition")
    print(header)
    for name in table:
        print(f"{name:<18}" + "".join(
            "{:>13}".format("{:.2f}/{:.2f}".format(*scores(counts[(name, c)])[:2])) for c in conditions))
    if "two-stage" in table:
        print("\ntwo-stage: share of frames on which Silero ran / Silero windows per frame")
        cells = [counts[("two-stage", c)] for c in conditions]
        print(f"{'silero frames':<18}" + "".join(f"{c['confirmed'] / max(1, c['frames']):13.1%}" for c in cells))
        print(f"{'silero windows':<18}" + "".join(f"{c['windows'] / max(1, c['frames']):13.2f}" for c in cells))
    kinds = sorted({t.noise for t in turns if t.noise})
    print("\nF1 per noise kind, wideband")
    wide = [c for c in conditions if c[0] == "wideband" and c[1] != "clean"]
    print(f"{'detector':<18}" + "".join(f"{k[:6]} {c[1]:>6}".rjust(14) for c in wide for k in kinds))
    for name in table:
        print(f"{name:<18}" + "".join(f"{scores(counts[(name, (c, k))])[2]:14.3f}" for c in wide for k in kinds))
    print("\ncost per 20 ms frame (CPU time of this process, single stream, whole set, this run)")
    for name in table:
        per_frame = seconds[name] / max(1, frames[name]) * 1e6 * 20 / turns[0].frame_ms
        print(f"{name:<18}{per_frame:10.1f} us")


if __name__ == "__main__":
    main()
