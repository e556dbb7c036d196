"""G.711 encode+decode of one 20 ms 8 kHz frame: compiled codec vs its pure-Python twin."""

import numpy as np
import pytest

from parley.core import _g711, _g711_py

FRAME = (np.sin(np.arange(160) / 7.0) * 12000).astype(np.int16)


@pytest.mark.parametrize("impl", [_g711_py, _g711], ids=["py", "c"])
def test_ulaw_frame_round_trip(benchmark, impl):
    benchmark.group = "g711-ulaw-20ms-frame"
    benchmark(lambda: impl.ulaw_decode(impl.ulaw_encode(FRAME)))


def test_ulaw_frame_round_trip_into_preallocated(benchmark):
    benchmark.group = "g711-ulaw-20ms-frame"
    codes, pcm = bytearray(160), np.empty(160, np.int16)

    def run():
        _g711.ulaw_encode_into(FRAME, codes)
        _g711.ulaw_decode_into(codes, pcm)

    benchmark(run)
