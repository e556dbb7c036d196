"""The jitter buffer per packet (one put and one pop of a 20 ms G.711 frame): compiled vs twin.

Run with ``.venv/bin/python -m pytest tests/bench/test_bench_jitter.py --benchmark-only``.
"""

import numpy as np
import pytest

from parley.core import _jitter_c, _jitter_py
from parley.core.jitter import JitterSettings

F = 160


@pytest.mark.parametrize("impl", [_jitter_py, _jitter_c], ids=["py", "c"])
def test_put_and_pop_one_packet(benchmark, impl):
    benchmark.group = "jitter-buffer-per-packet"
    buffer = impl.JitterBuffer(JitterSettings(), F, 8000)
    payload, out = np.arange(F, dtype=np.int16), np.zeros(F, np.int16)
    clock = {"seq": 0}

    def packet():
        seq = clock["seq"]
        buffer.put(seq & 0xFFFF, seq * F, payload, seq * 20_000_000)
        buffer.pop_into(out)
        clock["seq"] = seq + 1

    benchmark(packet)


@pytest.mark.parametrize("impl", [_jitter_py, _jitter_c], ids=["py", "c"])
def test_packet_then_a_two_packet_gap(benchmark, impl):
    """The dearer path: one packet played, then a repeat and a fading frame over the gap after it."""
    benchmark.group = "jitter-buffer-concealment"
    buffer = impl.JitterBuffer(JitterSettings(min_depth_frames=0), F, 8000)
    payload, out = np.arange(F, dtype=np.int16), np.zeros(F, np.int16)
    clock = {"seq": 0}

    def packet_and_gap():
        seq = clock["seq"]
        buffer.put(seq & 0xFFFF, seq * F, payload, seq * 20_000_000)
        for _ in range(3):
            buffer.pop_into(out)
        clock["seq"] = seq + 3

    benchmark(packet_and_gap)
