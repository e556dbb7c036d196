#!/usr/bin/env python
"""Turn-taking and barge-in figures on the core's evaluation sets (definitions: EVALUATION.md).

Endpointer, per hangover: delay from the true end of speech to ``end_of_turn`` (median, p90),
false cut-offs (an ``end_of_turn`` inside a mid-turn pause, a ``hold``: count and rate per hold,
and those inside holds shorter than the hangover, which only a VAD error can cause), and turns
never ended before the recording ran out. Frame decisions come from the two-stage VAD (stage a +
Silero, as on a call) and, for the endpointer alone, from the clean-signal labels. The same
decisions give the VAD-only baseline grid (silence timeout alone).

Barge-in, per echo return loss and echo delay: delay from the caller's onset to the barge-in
(median, p90), callers never detected, and false barge-ins per minute of echo-only audio.

Run: ``.venv/bin/python scripts/evaluate_turn_taking.py [--hangovers 500 800]``
"""

import argparse
import platform
import time
from collections import Counter, defaultdict

import numpy as np

from parley.appliance.config import load_settings
from parley.core import bargein, endpointer
from parley.core.bargein import BargeInSettings
from parley.core.echoset import build_echo_set
from parley.core.endpointer import EndpointerSettings, EndpointEvent
from parley.core.evalset import build_turn_set

BASELINE_TIMEOUTS_MS = tuple(range(200, 1700, 100))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hangovers", type=int, nargs="+", default=[500, 800], help="hangover_ms values to score")
    args = parser.parse_args()
    models_dir = load_settings().models_dir
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}; "
          f"compiled core: endpointer={endpointer.COMPILED} bargein={bargein.COMPILED}")
    turns = build_turn_set(models_dir)
    started = time.perf_counter()
    decisions = {"vad": [two_stage_vad_decisions(turn, models_dir) for turn in turns],
                 "labels": [turn.frame_labels for turn in turns]}
    print(f"evaluation set: {len(turns)} turns, {sum(len(t.audio) / t.sample_rate for t in turns) / 60:.1f} min, "
          f"{sum(len(t.holds) for t in turns)} holds; two-stage VAD over it took {time.perf_counter() - started:.1f} s")
    print_endpointer_table(turns, decisions, args.hangovers)
    print_baseline_grid(turns, decisions["vad"])
    print_bargein_table(build_echo_set(models_dir))


def two_stage_vad_decisions(turn, models_dir, _silero={}):
    from parley.core.silero import SileroVad
    from parley.core.vad import TwoStageVad

    if "model" not in _silero:
        _silero["model"] = SileroVad(models_dir / "silero-vad" / "silero_vad.onnx")
    vad = TwoStageVad(_silero["model"], turn.sample_rate, turn.frame_ms)
    n = turn.sample_rate * turn.frame_ms // 1000
    return np.array([vad.process(turn.audio[k * n:(k + 1) * n]) for k in range(len(turn.audio) // n)], np.uint8)


def turn_ends(turn, frame_decisions, endpointer_settings):
    """Samples of every end_of_turn the endpointer gives on the turn."""
    detector = endpointer.Endpointer(endpointer_settings, turn.sample_rate, turn.frame_ms)
    codes = np.zeros(len(frame_decisions), np.int32)
    samples = np.zeros(len(frame_decisions), np.int64)
    count = detector.feed_frames(np.asarray(frame_decisions, np.uint8), 0, codes, samples)
    return [int(s) for c, s in zip(codes[:count], samples[:count]) if c == EndpointEvent.END_OF_TURN]


def score_turns(turns, all_decisions, endpointer_settings):
    hangover = endpointer_settings.hangover_ms
    delays_ms, holds, cut, short_holds, short_cut, never = [], 0, 0, 0, 0, 0
    for turn, frame_decisions in zip(turns, all_decisions):
        ends = turn_ends(turn, frame_decisions, endpointer_settings)
        after = [s for s in ends if s >= turn.end_of_speech]
        if after:
            delays_ms.append((after[0] - turn.end_of_speech) * 1000 / turn.sample_rate)
        else:
            never += 1
        for start, end in turn.holds:
            inside = any(start <= s < end for s in ends)
            holds += 1
            cut += inside
            if (end - start) * 1000 < hangover * turn.sample_rate:
                short_holds += 1
                short_cut += inside
    return np.array(delays_ms), holds, cut, short_holds, short_cut, never


def print_endpointer_table(turns, decisions, hangovers):
    print("\nEndpointer (VAD-only policy: the turn ends after hangover_ms of silence)")
    print(f"{'decisions':<9} {'hangover':>8} {'median':>7} {'p90':>6} {'false cut-offs in holds':>24} "
          f"{'in holds < hangover':>20} {'never ended':>12}")
    for name, all_decisions in decisions.items():
        for hangover in hangovers:
            delays, holds, cut, short_holds, short_cut, never = score_turns(
                turns, all_decisions, EndpointerSettings(hangover_ms=hangover))
            print(f"{name:<9} {hangover:>6}ms {np.median(delays):>5.0f}ms {np.percentile(delays, 90):>4.0f}ms "
                  f"{cut:>9}/{holds} ({100 * cut / holds:4.1f} %) {short_cut:>11}/{short_holds} ({100 * short_cut / max(short_holds, 1):3.1f} %) "
                  f"{never:>6}/{len(turns)}")
    print("  delays are to the first end_of_turn at or after the true end of speech; "
          "'labels' = clean-signal frame labels (the endpointer alone), 'vad' = two-stage VAD")
    settings = EndpointerSettings(hangover_ms=hangovers[0])
    never = Counter(f"{turn.noise} {turn.snr_db:g} dB" for turn, frame_decisions in zip(turns, decisions["vad"])
                    if turn.snr_db is not None
                    and not [s for s in turn_ends(turn, frame_decisions, settings) if s >= turn.end_of_speech])
    print(f"  never ended through the VAD at {hangovers[0]} ms, by noise: "
          + (", ".join(f"{kind} {count}" for kind, count in sorted(never.items())) or "none"))


def print_baseline_grid(turns, vad_decisions):
    print("\nVAD-only baseline grid (two-stage VAD decisions, silence timeout = hangover_ms)")
    print(f"{'timeout':>8} {'median latency':>15} {'p90':>6} {'false cut-off rate (per hold)':>30} {'never ended':>12}")
    for timeout in BASELINE_TIMEOUTS_MS:
        settings = EndpointerSettings(hangover_ms=timeout, short_silence_ms=min(200, timeout - 20))
        delays, holds, cut, _, _, never = score_turns(turns, vad_decisions, settings)
        print(f"{timeout:>6}ms {np.median(delays):>13.0f}ms {np.percentile(delays, 90):>4.0f}ms "
              f"{100 * cut / holds:>29.1f} % {never:>6}/{len(turns)}")
    print("  latency is over the turns that ended; the recordings hold 1.6 s or more after the last word")


def print_bargein_table(cases):
    settings = BargeInSettings()
    print(f"\nBarge-in ({len(cases)} echo-set cases, {sum(c.duration_s for c in cases) / 60:.1f} min; {settings})")
    print(f"{'ERL':>5} {'delay':>6} {'median':>7} {'p90':>6} {'missed':>7} {'false/min echo-only':>20}")
    groups = defaultdict(lambda: {"delays": [], "missed": 0, "callers": 0, "false": 0, "echo_s": 0.0})
    for case in cases:
        detector = bargein.BargeInDetector(settings, case.sample_rate)
        detector.agent_speaking = True
        n = detector.frame_samples
        declared = [detector.event_sample for k in range(len(case.far) // n)
                    if detector.feed(case.near[k * n:(k + 1) * n], case.far[k * n:(k + 1) * n], k * n)]
        for key in ((case.erl_db, case.delay_ms), (case.erl_db, "all"), ("all", "all")):
            group = groups[key]
            if case.caller_onset is None:
                group["false"] += len(declared)
                group["echo_s"] += case.duration_s
            else:
                group["callers"] += 1
                heard = [s for s in declared if s >= case.caller_onset]
                group["false"] += len(declared) - len(heard)
                if heard:
                    group["delays"].append((heard[0] - case.caller_onset) * 1000 / case.sample_rate)
                else:
                    group["missed"] += 1
    for (erl, delay), group in sorted(groups.items(), key=lambda kv: [(k == "all", k if k != "all" else 0) for k in kv[0]]):
        delays = np.array(group["delays"]) if group["delays"] else np.array([np.nan])
        print(f"{erl:>5} {delay:>6} {np.median(delays):>5.0f}ms {np.percentile(delays, 90):>4.0f}ms "
              f"{group['missed']:>3}/{group['callers']:<3} {group['false'] / (group['echo_s'] / 60):>19.2f}")
    print("  ERL in dB, delay in ms; detection delay is from the caller's onset to the end of the deciding frame")


if __name__ == "__main__":
    main()
