"""Framing one 20 ms frame at 8 kHz (push a chunk, pop a frame): compiled vs twin, float32 and PCM16.

Run with ``.venv/bin/python -m pytest tests/bench/test_bench_framing.py --benchmark-only``.
"""

import numpy as np
import pytest

from parley.core import _framing_c, _framing_py


@pytest.mark.parametrize("impl", [_framing_py, _framing_c], ids=["py", "c"])
def test_push_float32_and_pop_a_frame(benchmark, impl):
    benchmark.group = "framing-20ms-float32"
    framer = impl.Framer(8000, 20)
    chunk, out = np.full(160, 0.1, np.float32), np.zeros(160, np.float32)

    def frame():
        framer.push(chunk)
        framer.pop_into(out)

    benchmark(frame)


@pytest.mark.parametrize("impl", [_framing_py, _framing_c], ids=["py", "c"])
def test_push_pcm16_and_pop_a_frame(benchmark, impl):
    benchmark.group = "framing-20ms-pcm16"
    framer = impl.Framer(8000, 20)
    chunk, out = np.full(160, 1000, np.int16), np.zeros(160, np.float32)

    def frame():
        framer.push_pcm16(chunk)
        framer.pop_into(out)

    benchmark(frame)
