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

Acoustic sweep (``--acoustic``, or ``--acoustic-only`` to skip everything else), eot-bench style:
Smart Turn scores every silence span of the clean-signal labels once per action delay, on the
audio the detector hears (up to the last 8 s, G.711 resampled to 16 kHz), over the clean wideband,
clean G.711 and 10 dB turns; the threshold x action_delay x timeout grid and the VAD-only baseline
(timeout alone) are then scored from those cached scores. The issue's figure (median delay after a
complete turn, share of 400-900 ms mid-sentence pauses cut) counts the holds of kind ``cut``: a
pause inserted at a word boundary in speech spoken in one breath (``MID_SENTENCE_CUTS``). It is
printed again for the other kinds of pause beside them: the speakers' own (beckett's between
sentences, two_cities' at commas) and those between TTS phrases synthesized apart, each of which
ends like a finished utterance ("my order number is" alone: p 0.86-0.98), and per source.

Then the shipped end-of-turn policy, the words read by SmolLM2-135M (each turn after the agent's
line before it, ``evalset.AGENT_LINE_BEFORE``) and read again up to the end of speech: the
issue's figure, read once and after the greeting alone for comparison, the figure with this
machine's compute counted in (the two readings in turn and at once), a weighing sweep, and a
5-fold cross-validation of the weighing over the set's source sentences.

Run: ``.venv/bin/python scripts/evaluate_turn_taking.py [--hangovers 500 800] [--acoustic | --acoustic-only]``
"""

import argparse
import dataclasses
import math
import platform
import time
from collections import Counter, defaultdict

import numpy as np

from parley.appliance.agent.config import END_OF_TURN
from parley.appliance.config import load_settings
from parley.appliance.speech.stt import Recognizer
from parley.core import bargein, endpointer
from parley.core.acoustic_turn import AcousticTurnSettings, SmartTurnModel, words_say_complete
from parley.core.bargein import BargeInSettings
from parley.core.echoset import build_echo_set
from parley.core.endpointer import EndpointerSettings, EndpointEvent
from parley.core.evalset import HOLD_KINDS, RATE, agent_line_before, build_turn_set, resample, source_of
from parley.core.turn_text import TurnTextModel, transcript_sounds_unfinished

BASELINE_TIMEOUTS_MS = tuple(range(200, 1700, 100))

ACOUSTIC_SNRS = (None, 10.0)
"""The acoustic sweep's subset: clean and 10 dB, each wideband and G.711 (Smart Turn costs ~100 ms a call)."""
ACOUSTIC_THRESHOLDS = (0.3, 0.5, 0.7, 0.9)
ACOUSTIC_ACTION_DELAYS_MS = (100, 200, 300, 500)
ACOUSTIC_TIMEOUTS_MS = tuple(range(300, 2001, 100))
LATENCY_BUDGETS_MS = (300, 600)
CUTOFF_BUDGETS = (0.05, 0.10)
TRANSCRIPT_DELAY_MS = 100
"""Silence after which the turn so far is transcribed for the text check (scores before it are unvetoed)."""
WORDS_WEIGHTS = (0.0, 0.25, 0.5)
WORDS_THRESHOLDS = (-2.0, -1.75, -1.5, -1.25, -1.0)
"""The words model's weighing swept around the shipped one (``AcousticTurnSettings.smart_turn_weight``, ``text_threshold``)."""
CV_FOLDS = 5
CV_WEIGHTS = (0.0, 0.1, 0.25, 0.5)
CV_THRESHOLDS = tuple(float(t) for t in np.arange(-3.0, -0.49, 0.125))
CV_MIN_EARLY = 0.57
"""Cross-validation's choice on the training folds: the fewest mid-sentence pauses cut among the
settings that end at least this share of complete turns early (a margin over the half the
issue's median needs)."""
ISSUE_PAUSE_MS = (400, 900)
"""The issue's mid-sentence pauses: holds this long, in ms, inclusive."""
ISSUE_CUT_BUDGET = 0.10
"""The issue's bound on the share of those pauses that may end the turn early."""
ISSUE_DELAY_BUDGET_MS = 350
"""The issue's bound on the median delay after the end of a complete turn."""
SHIPPED = (AcousticTurnSettings().threshold, END_OF_TURN["acoustic"]["short_silence_ms"], END_OF_TURN["acoustic"]["hangover_ms"])
"""Smart Turn's threshold, asked after ``short_silence_ms``, the hangover as timeout
(``parley.appliance.agent.config.END_OF_TURN``): the shipped timing. Where the spans' scores are
the words model's verdicts (``with_words_model``), this row is the policy an agent's call runs."""
SOURCE_FAMILIES = {"beckett": "recorded", "two_cities": "recorded", "espeak": "synthesized", "piper": "synthesized"}
"""Turn name prefix -> where its speech comes from: real readings, or TTS phrases spliced with silence."""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hangovers", type=int, nargs="+", default=[500, 800], help="hangover_ms values to score")
    parser.add_argument("--acoustic", action="store_true", help="also run the Smart Turn policy sweep")
    parser.add_argument("--acoustic-only", action="store_true", help="run only the Smart Turn policy sweep")
    args = parser.parse_args()
    models_dir = load_settings().models_dir
    if args.acoustic_only:
        print_acoustic_sweep(models_dir)
        return
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
    if args.acoustic:
        print_acoustic_sweep(models_dir)


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


# --- acoustic (Smart Turn) policy sweep, eot-bench style ----------------------------------------

def silence_spans(turn):
    """``[(start_sample, length_ms, is_eot), ...]``: the turn's holds, then its final silence.

    The final span (``eot``) is open-ended: the caller has finished, so silence would go on past
    the end of the recording (which keeps 1.6 s) and every timeout fires in it eventually.
    """
    spans = [(start, (end - start) * 1000 / turn.sample_rate, False) for start, end in turn.holds]
    spans.append((turn.end_of_speech, math.inf, True))
    return spans


def span_decision_ms(span_ms, score, threshold, action_delay_ms, timeout_ms):
    """When, in ms after a silence span starts, the policy ends the turn in it; None if speech resumes first.

    ``score`` is Smart Turn's p(complete) at ``action_delay_ms`` into the span (None when the span
    is not that long, or for the VAD-only policy). The turn ends at the action delay when the
    score reaches the threshold, else at the timeout; a span that ends first never ends the turn.
    """
    early = action_delay_ms if score is not None and score >= threshold else math.inf
    decision = min(early, timeout_ms)
    return decision if decision < span_ms else None


def score_policy(spans, threshold, action_delay_ms, timeout_ms):
    """``(false-cutoff rate per hold, latencies ms of the eot spans)`` over ``[(span_ms, is_eot, scores)]``.

    ``scores`` maps an action delay to the span's p(complete) there (missing: not scored).
    """
    holds = cut = 0
    latencies = []
    for span_ms, is_eot, scores in spans:
        decision = span_decision_ms(span_ms, scores.get(action_delay_ms), threshold, action_delay_ms, timeout_ms)
        if is_eot:
            latencies.append(decision)
        else:
            holds += 1
            cut += decision is not None
    return cut / max(holds, 1), np.array(latencies, dtype=float)


def operating_points(points):
    """eot-bench's four figures from ``[(false_cutoff_rate, latency_ms), ...]`` policies.

    Returns ``{("cutoff@", budget_ms): lowest rate within that latency,
    ("latency@", budget_rate): lowest latency within that rate}``; None where no policy fits.
    """
    result = {}
    for budget in LATENCY_BUDGETS_MS:
        rates = [rate for rate, latency in points if latency <= budget]
        result[("cutoff@", budget)] = min(rates) if rates else None
    for budget in CUTOFF_BUDGETS:
        latencies = [latency for rate, latency in points if rate <= budget + 1e-12]
        result[("latency@", budget)] = min(latencies) if latencies else None
    return result


def pareto_frontier(points):
    """Indices of the policies no other beats on both latency and false cut-offs, by rising latency."""
    order = sorted(range(len(points)), key=lambda k: (points[k][1], points[k][0]))
    frontier, best_rate = [], math.inf
    for k in order:
        if points[k][0] < best_rate:
            frontier.append(k)
            best_rate = points[k][0]
    return frontier


def acoustic_span_scores(turns, model, batch=8):
    """Per turn, ``[(span_ms, is_eot, {action_delay_ms: p(complete)}), ...]``: each span scored once per delay."""
    jobs, out = [], []
    for turn_index, turn in enumerate(turns):
        spans = []
        for span_index, (start, span_ms, is_eot) in enumerate(silence_spans(turn)):
            spans.append((span_ms, is_eot, {}))
            for delay in ACOUSTIC_ACTION_DELAYS_MS:
                if delay < span_ms:
                    end = start + delay * turn.sample_rate // 1000
                    jobs.append((turn_index, span_index, delay, end))
        out.append(spans)
    for first in range(0, len(jobs), batch):
        chunk = jobs[first:first + batch]
        audios = []
        for turn_index, _, _, end in chunk:
            turn = turns[turn_index]
            window = turn.audio[max(0, end - 8 * turn.sample_rate):end]
            if turn.sample_rate != RATE:
                window = resample(window, turn.sample_rate, RATE)
            audios.append(np.ascontiguousarray(window, dtype=np.float32))
        for (turn_index, span_index, delay, _), p in zip(chunk, model.score_batch(audios)):
            out[turn_index][span_index][2][delay] = p
    return out, len(jobs)


def span_transcripts(turns, recognizer, delay_ms=TRANSCRIPT_DELAY_MS):
    """Per turn, per silence span: the turn so far transcribed ``delay_ms`` into the span (None
    when the span is shorter); the same shape of the ms each transcription took; and the seconds
    all took."""
    out, took, started = [], [], time.perf_counter()
    for turn in turns:
        texts, ms = [], []
        for start, span_ms, _ in silence_spans(turn):
            end = start + delay_ms * turn.sample_rate // 1000
            heard = (recognizer.transcribe(np.ascontiguousarray(turn.audio[:end]), turn.sample_rate)
                     if delay_ms < span_ms else None)
            texts.append(None if heard is None else heard.text)
            ms.append(None if heard is None else 1000 * heard.compute_seconds)
        out.append(texts)
        took.append(ms)
    return out, took, time.perf_counter() - started


def speech_end_readings(turns, per_turn_texts, recognizer, text_model):
    """Per turn, per span: ``(transcript, p_words, ms)`` of the turn up to the end of speech (no
    silence; read after the turn's agent line; ms: transcribing and reading it), where the span
    has a transcript after the pause (else None); and the seconds taken."""
    out, started = [], time.perf_counter()
    for turn, texts in zip(turns, per_turn_texts):
        readings = []
        for (start, _, _), text in zip(silence_spans(turn), texts):
            if text is None:
                readings.append(None)
                continue
            begun = time.perf_counter()
            heard = recognizer.transcribe(np.ascontiguousarray(turn.audio[:start]), turn.sample_rate).text
            p_words = text_model.p_complete(heard, agent_line_before(turn.name))
            readings.append((heard, p_words, 1000 * (time.perf_counter() - begun)))
        out.append(readings)
    return out, time.perf_counter() - started


def with_transcript_veto(per_turn, per_turn_texts, delay_ms=TRANSCRIPT_DELAY_MS):
    """The spans, each score at or after ``delay_ms`` set to 0 where the transcript sounds unfinished:
    the policy "Smart Turn says complete *and* the words do not say unfinished"."""
    vetoed = []
    for spans, texts in zip(per_turn, per_turn_texts):
        turn_spans = []
        for (span_ms, is_eot, scores), text in zip(spans, texts):
            if text is not None and transcript_sounds_unfinished(text):
                scores = {d: (0.0 if d >= delay_ms else p) for d, p in scores.items()}
            elif text is None:
                scores = {d: p for d, p in scores.items() if d < delay_ms}
            turn_spans.append((span_ms, is_eot, scores))
        vetoed.append(turn_spans)
    return vetoed


def words_model_scores(per_turn_texts, text_model, lines=None):
    """Per turn, per span: the words model's p(the message can end here) for the span's transcript
    (None: none), read as a reply to the turn's agent line in ``lines`` (None: the greeting)."""
    lines = lines or [None] * len(per_turn_texts)
    return [[None if text is None else text_model.p_complete(text, line) for text in texts]
            for texts, line in zip(per_turn_texts, lines)]


def with_words_model(per_turn, per_turn_texts, per_turn_p_words, settings, delay_ms=TRANSCRIPT_DELAY_MS,
                     speech_end=None):
    """The spans, each score at or after ``delay_ms`` replaced by the stage's verdict with a words
    model (1.0 "complete", 0.0 not: ``AcousticTurnStage._with_transcript``), the scores before it
    dropped (the words are not in yet): the policy an agent's call runs. ``speech_end``: per turn,
    per span, ``(transcript, p_words)`` of the words up to the end of speech, which must say
    "complete" too when ``settings.reread_at_speech_end`` (None: one reading only)."""
    reread = speech_end is not None and settings.reread_at_speech_end
    out = []
    for k, (spans, texts, p_words) in enumerate(zip(per_turn, per_turn_texts, per_turn_p_words)):
        turn_spans = []
        for j, ((span_ms, is_eot, scores), text, p_text) in enumerate(zip(spans, texts, p_words)):
            decided = {}
            if text is not None:
                for delay, p in scores.items():
                    if delay >= delay_ms:
                        complete = words_say_complete(text, p_text, p, settings)
                        if complete and reread:
                            end_text, end_p, _ = speech_end[k][j]
                            complete = words_say_complete(end_text, end_p, p, settings)
                        decided[delay] = float(complete)
            turn_spans.append((span_ms, is_eot, decided))
        out.append(turn_spans)
    return out


def _fmt(value, unit):
    if value is None:
        return "n/a"
    return f"{100 * value:.1f} %" if unit == "%" else f"{value:.0f} ms"


def print_acoustic_sweep(models_dir):
    turns = [t for t in build_turn_set(models_dir) if t.snr_db in ACOUSTIC_SNRS]
    model = SmartTurnModel.from_models_dir(models_dir)
    started = time.perf_counter()
    per_turn, calls = acoustic_span_scores(turns, model)
    elapsed = time.perf_counter() - started
    spans = [span for turn_spans in per_turn for span in turn_spans]
    holds = sum(not is_eot for _, is_eot, _ in spans)
    print(f"\nAcoustic end-of-turn sweep (Smart Turn v3.2, eot-bench style): {len(turns)} turns "
          f"(clean + {', '.join(f'{s:g} dB' for s in ACOUSTIC_SNRS if s is not None)}; wideband + g711), "
          f"{holds} hold spans, {len(turns)} eot spans; clean-signal labels' silence spans")
    print(f"  {calls} Smart Turn scorings in {elapsed:.1f} s ({1000 * elapsed / max(calls, 1):.0f} ms each)")

    policies = {"smart_turn": [], "vad_only": []}
    for threshold in ACOUSTIC_THRESHOLDS:
        for delay in ACOUSTIC_ACTION_DELAYS_MS:
            for timeout in ACOUSTIC_TIMEOUTS_MS:
                rate, latencies = score_policy(spans, threshold, delay, timeout)
                policies["smart_turn"].append(((threshold, delay, timeout), rate, latencies))
    for timeout in ACOUSTIC_TIMEOUTS_MS:
        rate, latencies = score_policy(spans, math.inf, 0, timeout)
        policies["vad_only"].append(((None, None, timeout), rate, latencies))

    print("\nOperating points (false cut-off rate per hold; latency = mean over eot spans, "
          "the lowest a grid policy reaches within the budget)")
    print(f"{'policy':<11} {'cutoffs @300 ms':>16} {'cutoffs @600 ms':>16} {'latency @5 %':>13} {'latency @10 %':>14}")
    for name, rows in policies.items():
        ops = operating_points([(rate, lat.mean()) for _, rate, lat in rows])
        print(f"{name:<11} {_fmt(ops[('cutoff@', 300)], '%'):>16} {_fmt(ops[('cutoff@', 600)], '%'):>16} "
              f"{_fmt(ops[('latency@', 0.05)], 'ms'):>13} {_fmt(ops[('latency@', 0.10)], 'ms'):>14}")

    for name, rows in policies.items():
        frontier = pareto_frontier([(rate, lat.mean()) for _, rate, lat in rows])
        print(f"\nPareto frontier, {name} ({len(frontier)} of {len(rows)} policies)")
        print(f"{'threshold':>9} {'delay':>6} {'timeout':>8} {'mean latency':>13} {'median':>7} {'p90':>6} {'false cut-offs':>15}")
        for k in frontier:
            (threshold, delay, timeout), rate, lat = rows[k]
            print(f"{'-' if threshold is None else threshold:>9} {'-' if delay is None else delay:>6} {timeout:>6}ms "
                  f"{lat.mean():>11.0f}ms {np.median(lat):>5.0f}ms {np.percentile(lat, 90):>4.0f}ms {100 * rate:>13.1f} %")

    # The issue's figure: every complete turn, and the mid-sentence pauses (holds of kind "cut");
    # then the same on each other kind of pause, and by where the speech comes from.
    families = [SOURCE_FAMILIES.get(turn.name.split("/")[0], "other") for turn in turns]
    kinds = [turn.hold_kinds + ("eot",) for turn in turns]
    print_issue_figures(families, kinds, per_turn, "")
    policy, _ = issue_policies(spans_of(families, kinds, per_turn, ("cut",)))["cut"]
    print(f"\nThe mid-sentence policy (cut) t={policy[0]} d={policy[1]} to={policy[2]} on each kind of pause of "
          f"{ISSUE_PAUSE_MS[0]}-{ISSUE_PAUSE_MS[1]} ms: " + "; ".join(
              "{}: {}/{} cut".format(kind, *issue_figures(spans_of(families, kinds, per_turn, (kind,)), *policy)[2:])
              for kind in HOLD_KINDS))

    # Smart Turn with the text check (core/turn_text.py): the turn so far transcribed by the STT model.
    texts, transcribe_ms, seconds = span_transcripts(turns, Recognizer.from_dir(models_dir / "whisper-tiny.en"))
    count = sum(text is not None for turn_texts in texts for text in turn_texts)
    print(f"\n--- Smart Turn + transcript (whisper-tiny.en, the turn so far at {TRANSCRIPT_DELAY_MS} ms of "
          f"silence; {count} transcriptions, {1000 * seconds / max(count, 1):.0f} ms each on this machine; on a "
          "call the words are asked once Smart Turn says complete, so the two computes add up) ---")
    print_issue_figures(families, kinds, with_transcript_veto(per_turn, texts), ", Smart Turn + transcript")

    # The words read by the words model, weighed with Smart Turn: what an agent's call runs.
    text_model = TurnTextModel.from_models_dir(models_dir)
    started = time.perf_counter()
    lines = [agent_line_before(turn.name) for turn in turns]
    p_words = words_model_scores(texts, text_model, lines)
    seconds = time.perf_counter() - started
    settings = AcousticTurnSettings()
    speech_end, end_seconds = speech_end_readings(turns, texts, Recognizer.from_dir(models_dir / "whisper-tiny.en"),
                                                  text_model)
    print(f"\n--- The words read by SmolLM2-135M (shipped: log-odds of the words + {settings.smart_turn_weight} x "
          f"Smart Turn's >= {settings.text_threshold}, the string rules not saying unfinished; {count} readings, "
          f"{1000 * seconds / max(count, 1):.0f} ms each here; a \"complete\" read again on the words up to the end "
          f"of speech: {count} transcriptions and readings, {1000 * end_seconds / max(count, 1):.0f} ms each) ---")
    print_issue_figures(families, kinds, with_words_model(per_turn, texts, p_words, settings, speech_end=speech_end),
                        ", words model, read twice", shipped="shipped (words, read twice)", grid=False)
    print_issue_figure("mid-sentence pauses, the shipped weighing read once (no second reading at the end of speech)",
                       spans_of(families, kinds, with_words_model(per_turn, texts, p_words, settings), ("cut",)),
                       "words, read once", grid=False)
    greeted = [[None if reading is None else (reading[0], text_model.p_complete(reading[0]), reading[2])
                for reading in readings] for readings in speech_end]
    print_issue_figure("mid-sentence pauses, every turn read as a reply to the greeting (no agent line of its own)",
                       spans_of(families, kinds, with_words_model(per_turn, texts, words_model_scores(texts, text_model),
                                                                  settings, speech_end=greeted), ("cut",)),
                       "words, after the greeting", grid=False)
    print_timed_issue_figure(kinds, per_turn, texts, p_words, speech_end, settings, transcribe_ms,
                             1000 * seconds / max(count, 1))
    print_words_sweep(families, kinds, per_turn, texts, p_words, settings, speech_end)
    print_cross_validation(turns, kinds, per_turn, texts, p_words, speech_end, settings)
    word_spans = [[(span_ms, is_eot, {} if p is None else {TRANSCRIPT_DELAY_MS: p})
                   for (span_ms, is_eot, _), p in zip(turn_spans, turn_p)] for turn_spans, turn_p in zip(per_turn, p_words)]
    print("  AUC, complete turns above mid-sentence pauses, at {} ms: words model {:.2f}, Smart Turn {:.2f}".format(
        TRANSCRIPT_DELAY_MS,
        *(score_auc(*eot_and_hold_scores(spans_of(families, kinds, scored, ("cut",)), TRANSCRIPT_DELAY_MS))
          for scored in (word_spans, per_turn))))
    subsets = {f"{family} speech": spans_of(families, kinds, per_turn, HOLD_KINDS, family)
               for family in sorted(set(families))}

    print("\nSmart Turn alone, per action delay (p = p(complete) at that much silence)")
    print(f"{'delay':>6} {'eot spans':>10} {'holds scored':>13} {'AUC eot>hold':>13} {'eot p>=0.5':>11} "
          f"{'hold p>=0.5':>12} {'eot p>=0.9':>11} {'hold p>=0.9':>12}")
    for delay in ACOUSTIC_ACTION_DELAYS_MS:
        eot, hold = eot_and_hold_scores(spans, delay)
        print(f"{delay:>4}ms {len(eot):>10} {len(hold):>13} {score_auc(eot, hold):>13.2f} "
              f"{100 * np.mean(eot >= 0.5):>9.1f} % {100 * np.mean(hold >= 0.5):>10.1f} % "
              f"{100 * np.mean(eot >= 0.9):>9.1f} % {100 * np.mean(hold >= 0.9):>10.1f} %")
    print("  by source, AUC eot>hold per action delay: " + "; ".join(
        f"{label} " + " ".join(f"{score_auc(*eot_and_hold_scores(family_spans, delay)):.2f}"
                               for delay in ACOUSTIC_ACTION_DELAYS_MS)
        for label, family_spans in subsets.items()))


def print_words_sweep(families, kinds, per_turn, texts, p_words, settings, speech_end):
    """The words model's weighing swept around the shipped one, read once and read twice: the
    issue's figure per weight and threshold, then eot-bench's operating points over that grid and
    the timeouts (every hold)."""
    rows, points = [], []
    for weight in WORDS_WEIGHTS:
        for threshold in WORDS_THRESHOLDS:
            for reread in (False, True):
                swept = dataclasses.replace(settings, smart_turn_weight=weight, text_threshold=threshold,
                                            reread_at_speech_end=reread)
                weighed = with_words_model(per_turn, texts, p_words, swept, speech_end=speech_end)
                mid_sentence = spans_of(families, kinds, weighed, ("cut",))
                median, _, cut, pauses = issue_figures(mid_sentence, *SHIPPED)
                _, latencies = score_policy(mid_sentence, *SHIPPED)
                rows.append((weight, threshold, reread, np.mean(latencies < SHIPPED[2]), median,
                             cut / max(pauses, 1), pauses))
                if reread == settings.reread_at_speech_end:
                    every = [span for turn_spans in weighed for span in turn_spans]
                    for timeout in ACOUSTIC_TIMEOUTS_MS:
                        rate, all_latencies = score_policy(every, 0.5, TRANSCRIPT_DELAY_MS, timeout)
                        points.append((rate, all_latencies.mean()))
    print(f"\nThe words model's weighing, swept (every complete turn, the {rows[0][6]} mid-sentence pauses; "
          f"asked after {SHIPPED[1]} ms, else the {SHIPPED[2]} ms hangover); read once | read twice")
    print(f"{'smart_turn_weight':>17} {'text_threshold':>15} {'ended early':>12} {'median':>7} {'pauses cut':>11}"
          f" | {'ended early':>12} {'median':>7} {'pauses cut':>11}")
    for once, twice in zip(rows[::2], rows[1::2]):
        print(f"{once[0]:>17} {once[1]:>15} " + " | ".join(
            f"{100 * early:>10.1f} % {median:>5.0f}ms {100 * cut_rate:>9.1f} %" for *_, early, median, cut_rate, _ in
            (once, twice)))
    ops = operating_points(points)
    print(f"\nOperating points with the words model (every hold; weight x threshold x timeout grid, asked after "
          f"{TRANSCRIPT_DELAY_MS} ms): cutoffs @300 ms {_fmt(ops[('cutoff@', 300)], '%')}, @600 ms "
          f"{_fmt(ops[('cutoff@', 600)], '%')}; latency @5 % {_fmt(ops[('latency@', 0.05)], 'ms')}, "
          f"@10 % {_fmt(ops[('latency@', 0.10)], 'ms')}")


def timed_decisions(kinds, per_turn, texts, p_words, speech_end, settings, transcribe_ms, read_ms):
    """``(latencies after the complete turns, [(pause ms, decision ms)] of the issue's pauses)`` when
    each verdict lands only after its compute (this machine's: the transcription's own time, the
    mean reading, and the second reading's time when there is one, or the slower of the two when
    they run at once). A verdict later than the
    hangover does not count; one that lands after the caller spoke again cuts nothing."""
    low, high = ISSUE_PAUSE_MS
    timeout = SHIPPED[2]
    latencies, pauses = [], []
    for k, (turn_kinds, turn_spans) in enumerate(zip(kinds, per_turn)):
        for j, (kind, (span_ms, is_eot, _)) in enumerate(zip(turn_kinds, turn_spans)):
            if not (is_eot or (kind == "cut" and low <= span_ms <= high)):
                continue
            decision = timeout
            if texts[k][j] is not None:
                landed = TRANSCRIPT_DELAY_MS + transcribe_ms[k][j] + read_ms
                complete = words_say_complete(texts[k][j], p_words[k][j], math.nan, settings)
                if complete and settings.reread_at_speech_end:
                    end_text, end_p, end_ms = speech_end[k][j]
                    landed = (max(landed, TRANSCRIPT_DELAY_MS + end_ms) if settings.concurrent_readings
                              else landed + end_ms)
                    complete = words_say_complete(end_text, end_p, math.nan, settings)
                if complete:
                    decision = min(landed, timeout)
            if is_eot:
                latencies.append(decision)
            else:
                pauses.append((span_ms, decision))
    return np.array(latencies), pauses


def print_timed_issue_figure(kinds, per_turn, texts, p_words, speech_end, settings, transcribe_ms, read_ms):
    """The issue's figure for the shipped words policy with compute counted in (at weight 0 Smart
    Turn is not run, so it costs nothing)."""
    if settings.smart_turn_weight:
        return
    low, high = ISSUE_PAUSE_MS
    print(f"\nThe shipped policy with this machine's compute counted in: a verdict lands {TRANSCRIPT_DELAY_MS} ms "
          f"into the pause plus the transcription's own time, {read_ms:.0f} ms of reading, and the second "
          f"reading's time (one thread, nothing else running; on a call the first transcription is the head "
          f"start's, shared)")
    for label, reread, concurrent in (("read once", False, False),
                                      ("read twice, in turn (one STT worker)", True, False),
                                      ("read twice, at once (two STT workers)", True, True)):
        swept = dataclasses.replace(settings, reread_at_speech_end=reread, concurrent_readings=concurrent)
        latencies, pauses = timed_decisions(kinds, per_turn, texts, p_words, speech_end, swept, transcribe_ms, read_ms)
        cut = sum(decision < span_ms for span_ms, decision in pauses)
        early = latencies[latencies < SHIPPED[2]]
        print(f"  {label}: median delay after a complete turn {np.median(latencies):.0f} ms "
              f"(p90 {np.percentile(latencies, 90):.0f} ms; {100 * early.size / latencies.size:.1f} % ended before the "
              f"hangover, at a median {np.median(early):.0f} ms), {cut}/{len(pauses)} pauses of {low}-{high} ms cut")


def words_outcomes(kinds, per_turn, texts, p_words, speech_end, settings):
    """Per turn: ``[(is_eot, ended early)]`` over its complete turn and its issue's mid-sentence pauses."""
    low, high = ISSUE_PAUSE_MS
    weighed = with_words_model(per_turn, texts, p_words, settings, speech_end=speech_end)
    return [[(is_eot, scores.get(TRANSCRIPT_DELAY_MS) == 1.0 and TRANSCRIPT_DELAY_MS < span_ms)
             for kind, (span_ms, is_eot, scores) in zip(turn_kinds, turn_spans)
             if is_eot or (kind == "cut" and low <= span_ms <= high)]
            for turn_kinds, turn_spans in zip(kinds, weighed)]


def early_and_cut(outcomes, turn_indices):
    """``(share of complete turns ended early, pauses cut, pauses)`` over some turns' outcomes."""
    ended = [early for k in turn_indices for is_eot, early in outcomes[k] if is_eot]
    cut = [early for k in turn_indices for is_eot, early in outcomes[k] if not is_eot]
    return float(np.mean(ended)), sum(cut), len(cut)


def print_cross_validation(turns, kinds, per_turn, texts, p_words, speech_end, settings):
    """The words model's weighing chosen by cross-validation over the set's source sentences (every
    copy of a sentence in one fold), read once and read twice: what the choice does on sentences
    it has not seen."""
    sources = [source_of(turn.name) for turn in turns]
    order = np.random.default_rng(0).permutation(sorted(set(sources)))
    fold_of = {source: k % CV_FOLDS for k, source in enumerate(order)}
    print(f"\nCross-validated weighing ({CV_FOLDS} folds over {len(order)} source sentences; on the training "
          f"folds, the fewest pauses cut with >= {100 * CV_MIN_EARLY:.0f} % of complete turns ended early; "
          f"weights {CV_WEIGHTS}, thresholds {CV_THRESHOLDS[0]} to {CV_THRESHOLDS[-1]} by 0.125)")
    for reread in (False, True):
        grid = {(w, t): words_outcomes(kinds, per_turn, texts, p_words, speech_end,
                                       dataclasses.replace(settings, smart_turn_weight=w, text_threshold=t,
                                                           reread_at_speech_end=reread))
                for w in CV_WEIGHTS for t in CV_THRESHOLDS}
        held_out, picks = [[] for _ in range(len(turns))], []
        for fold in range(CV_FOLDS):
            train = [k for k, s in enumerate(sources) if fold_of[s] != fold]
            test = [k for k, s in enumerate(sources) if fold_of[s] == fold]
            scored = []
            for key, outcomes in grid.items():
                early, cut, pauses = early_and_cut(outcomes, train)
                if early >= CV_MIN_EARLY:
                    scored.append((cut / pauses, -early, key))
            pick = min(scored)[2] if scored else (0.0, CV_THRESHOLDS[0])
            picks.append(pick)
            for k in test:
                held_out[k] = grid[pick][k]
        early, cut, pauses = early_and_cut(held_out, range(len(turns)))
        print(f"  read {'twice' if reread else 'once '}: held out, {100 * early:.1f} % of complete turns ended early "
              f"(median delay {TRANSCRIPT_DELAY_MS if early > 0.5 else SHIPPED[2]} ms), {cut}/{pauses} pauses cut "
              f"({100 * cut / max(pauses, 1):.0f} %); picks (weight, threshold) per fold: "
              + ", ".join(f"({w:g}, {t:g})" for w, t in picks))


def spans_of(families, kinds, per_turn, pause_kinds, family=None):
    """The eot spans and the holds of ``pause_kinds``, of every turn or of one source family's."""
    return [span for f, turn_kinds, turn_spans in zip(families, kinds, per_turn) if family in (None, f)
            for kind, span in zip(turn_kinds, turn_spans) if kind in ("eot", *pause_kinds)]


def print_issue_figures(families, kinds, per_turn, label, shipped="smart turn, shipped timing", grid=True):
    """The issue's figure on the mid-sentence pauses, on each other kind of pause, and per source family."""
    print_issue_figure(f"mid-sentence pauses (inserted at a word boundary of speech spoken in one breath){label}",
                       spans_of(families, kinds, per_turn, ("cut",)), shipped, grid)
    for kind, what in (("natural", "the speakers' own pauses"), ("spliced", "pauses between TTS phrases spoken apart")):
        print_issue_figure(f"{what} (holds of kind {kind!r}){label}", spans_of(families, kinds, per_turn, (kind,)),
                           shipped, grid)
    for family in sorted(set(families)):
        print_issue_figure(f"{family} speech, mid-sentence pauses{label}",
                           spans_of(families, kinds, per_turn, ("cut",), family), shipped, grid)


def eot_and_hold_scores(spans, delay):
    """p(complete) at ``delay`` into the eot spans and into the holds long enough to be scored there."""
    eot = np.array([scores[delay] for _, is_eot, scores in spans if is_eot and delay in scores])
    hold = np.array([scores[delay] for _, is_eot, scores in spans if not is_eot and delay in scores])
    return eot, hold


def issue_pauses(spans):
    """The holds the issue counts: mid-turn pauses of ``ISSUE_PAUSE_MS`` (inclusive)."""
    low, high = ISSUE_PAUSE_MS
    return [span for span in spans if not span[1] and low <= span[0] <= high]


def issue_figures(spans, threshold, delay, timeout):
    """``(median delay ms after a complete turn, its p90, pauses cut, pauses)`` for one policy."""
    pauses = issue_pauses(spans)
    _, latencies = score_policy(spans, threshold, delay, timeout)
    cut = sum(span_decision_ms(span_ms, scores.get(delay), threshold, delay, timeout) is not None
              for span_ms, _, scores in pauses)
    return float(np.median(latencies)), float(np.percentile(latencies, 90)), cut, len(pauses)


def issue_policies(spans):
    """The two Smart Turn policies the issue's figure needs, each ``(policy, fits)``.

    ``cut``: the lowest median delay with at most ``ISSUE_CUT_BUDGET`` of the issue's pauses cut
    (fewer cuts break ties); ``delay``: the fewest pauses cut with a median delay of at most
    ``ISSUE_DELAY_BUDGET_MS`` (lower median breaks ties). Where no grid policy fits a budget, the
    one nearest it, with ``fits`` False.
    """
    rows = []
    for threshold in ACOUSTIC_THRESHOLDS:
        for delay in ACOUSTIC_ACTION_DELAYS_MS:
            for timeout in ACOUSTIC_TIMEOUTS_MS:
                median, _, cut, pauses = issue_figures(spans, threshold, delay, timeout)
                rows.append((cut / max(pauses, 1), median, (threshold, delay, timeout)))
    within_cut = [row for row in rows if row[0] <= ISSUE_CUT_BUDGET + 1e-12]
    within_delay = [row for row in rows if row[1] <= ISSUE_DELAY_BUDGET_MS]
    by_cut, by_delay = (lambda row: (row[0], row[1])), (lambda row: (row[1], row[0]))
    return {
        "cut": (min(within_cut, key=by_delay)[2], True) if within_cut else (min(rows, key=by_cut)[2], False),
        "delay": (min(within_delay, key=by_cut)[2], True) if within_delay else (min(rows, key=by_delay)[2], False),
    }


def print_issue_figure(label, spans, shipped, grid=True):
    """Median delay after a complete turn and share of 400-900 ms pauses cut: Smart Turn beside fixed
    hangovers; with ``grid``, also the Smart Turn grid's best policies for each of the issue's bounds."""
    low, high = ISSUE_PAUSE_MS
    chosen = issue_policies(spans)
    contenders = [(f"smart turn t={t} d={d} to={to} ({why})", t, d, to)
                  for why, ((t, d, to), _) in (("cut", chosen["cut"]), ("delay", chosen["delay"]))] if grid else []
    contenders.append((f"{shipped} t={SHIPPED[0]} d={SHIPPED[1]} to={SHIPPED[2]}", *SHIPPED))
    contenders += [(f"vad-only hangover {t} ms", math.inf, 0, t) for t in (500, 800)]
    eots = sum(is_eot for _, is_eot, _ in spans)
    print(f"\nThe issue's figure, {label} ({eots} complete turns, {len(issue_pauses(spans))} mid-turn pauses "
          f"of {low}-{high} ms)")
    print(f"{'policy':<52} {'median delay':>13} {'p90':>6} {'pauses cut':>14} {'all holds cut':>14}")
    for name, threshold, delay, timeout in contenders:
        median, p90, cut, pauses = issue_figures(spans, threshold, delay, timeout)
        rate, _ = score_policy(spans, threshold, delay, timeout)
        print(f"{name:<52} {median:>11.0f}ms {p90:>4.0f}ms {cut:>4}/{pauses} ({100 * cut / max(pauses, 1):4.1f} %) "
              f"{100 * rate:>12.1f} %")
    if grid:
        print(f"  (cut): lowest median delay with <= {100 * ISSUE_CUT_BUDGET:.0f} % of these pauses cut"
              f"{'' if chosen['cut'][1] else ' - none fits: fewest cut shown'}; "
              f"(delay): fewest cut with median <= {ISSUE_DELAY_BUDGET_MS} ms"
              f"{'' if chosen['delay'][1] else ' - none fits: lowest median shown'}; ")
    print("  d = action delay, to = timeout (ms); the eot silence is unbounded")


def score_auc(positives, negatives):
    """P(a positive scores above a negative), ties counting half; NaN when either side is empty."""
    positives, negatives = np.asarray(positives, float), np.asarray(negatives, float)
    if not positives.size or not negatives.size:
        return math.nan
    greater = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()
    return float(greater + 0.5 * ties)


if __name__ == "__main__":
    main()
