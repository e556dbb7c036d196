"""Print Smart Turn v3.2's p(complete) for the probe turns in ``tests/acoustic_turn_probes.py``.

One row per probe, one column per variant (clean, inaudible dither, noise, phone line), then the
mean per group and how many verdicts flip between variants at the threshold. Run from the
checkout: ``.venv/bin/python scripts/acoustic_turn_probe.py [--threshold 0.5]``.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from parley.appliance.config import load_settings
from parley.core.acoustic_turn import AcousticTurnSettings, SmartTurnModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from acoustic_turn_probes import VARIANTS, build_probes, tools_missing  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=AcousticTurnSettings().threshold)
    parser.add_argument("--threads", type=int, default=AcousticTurnSettings().intra_op_threads)
    args = parser.parse_args()
    if tools_missing():
        sys.exit(f"needs {' and '.join(tools_missing())}: apt-get install sox espeak-ng")
    model = SmartTurnModel.from_models_dir(load_settings().models_dir, intra_op_threads=args.threads)
    probes = build_probes(load_settings().models_dir)
    started = time.perf_counter()
    scores = np.array([model.score_batch([variant(p.audio) for variant in VARIANTS.values()]) for p in probes])
    elapsed = time.perf_counter() - started

    print(f"| group | probe | {' | '.join(VARIANTS)} |")
    print(f"|---|---|{'---:|' * len(VARIANTS)}")
    for probe, row in zip(probes, scores):
        print(f"| {probe.group} | {probe.label} | {' | '.join(f'{p:.3f}' for p in row)} |")
    print()
    for group in ("complete", "incomplete", "clause"):
        rows = scores[[p.group == group for p in probes]]
        means = " | ".join(f"{m:.3f}" for m in rows.mean(axis=0))
        hits = " | ".join(f"{n}/{len(rows)}" for n in (rows >= args.threshold).sum(axis=0))
        print(f"| {group}: mean | {means} |")
        print(f"| {group}: p >= {args.threshold} | {hits} |")
    verdicts = scores >= args.threshold
    flips = [p.label for p, row in zip(probes, verdicts) if row.any() and not row.all()]
    print(f"\nverdict changes across variants: {len(flips)}/{len(probes)} probes: {flips}")
    print(f"{scores.size} scorings in {elapsed:.1f} s ({elapsed / scores.size * 1000:.0f} ms each incl. features), "
          f"threads={args.threads}, providers={model.providers}")


if __name__ == "__main__":
    main()
