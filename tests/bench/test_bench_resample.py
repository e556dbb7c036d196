"""Resampling one 20 ms frame per rate pair: the compiled resampler vs its numpy twin, and outside
peers when installed: scipy's ``resample_poly`` (designs its filter on every call), scipy's
``upfirdn`` given our taps (the filtering alone), python-soxr's ``ResampleStream`` (HQ).

The scipy functions filter each frame on its own (no state across frames), so they are peers for
cost only, not for output; soxr streams like ours. Neither is a dependency: install them into
another environment to see them here. Run with
``.venv/bin/python -m pytest tests/bench/test_bench_resample.py --benchmark-only``.
"""

import numpy as np
import pytest

from parley.core import _resample, _resample_py

PAIRS = [(8000, 16000), (16000, 8000), (22050, 8000), (22050, 16000), (24000, 8000), (24000, 16000), (48000, 16000)]
PAIR_IDS = [f"{a}-{b}" for a, b in PAIRS]


def _frame(rate):
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate // 50) / rate)).astype(np.float32)


@pytest.mark.parametrize("impl", [_resample_py, _resample], ids=["py", "c"])
@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS, ids=PAIR_IDS)
def test_resample_frame(benchmark, impl, in_rate, out_rate):
    benchmark.group = f"resample-20ms-{in_rate}-to-{out_rate}"
    resampler = impl.StreamResampler(in_rate, out_rate)
    frame = _frame(in_rate)
    out = np.empty(resampler.max_output(len(frame)), np.float32)
    benchmark(resampler.process_into, frame, out)


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS, ids=PAIR_IDS)
def test_resample_frame_scipy_resample_poly(benchmark, in_rate, out_rate):
    signal = pytest.importorskip("scipy.signal")
    benchmark.group = f"resample-20ms-{in_rate}-to-{out_rate}"
    resampler = _resample.StreamResampler(in_rate, out_rate)
    frame = _frame(in_rate)
    benchmark(signal.resample_poly, frame, resampler.up, resampler.down)


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS, ids=PAIR_IDS)
def test_resample_frame_scipy_upfirdn_with_our_taps(benchmark, in_rate, out_rate):
    signal = pytest.importorskip("scipy.signal")
    benchmark.group = f"resample-20ms-{in_rate}-to-{out_rate}"
    design = _resample.StreamResampler(in_rate, out_rate).design
    benchmark(signal.upfirdn, design.taps, _frame(in_rate), design.up, design.down)


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS, ids=PAIR_IDS)
def test_resample_frame_soxr_stream(benchmark, in_rate, out_rate):
    soxr = pytest.importorskip("soxr")
    benchmark.group = f"resample-20ms-{in_rate}-to-{out_rate}"
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
    benchmark(stream.resample_chunk, _frame(in_rate))
