"""Per-frame cost of the turn-taking state machines: compiled vs the plain-Python twin (same source).

A barge-in or playout round handles one second of a 16 kHz call (50 frames of 20 ms); an
endpointer round 20 seconds (1,000 frames), as its frame costs only nanoseconds. Divide a round's
time by its frames for the cost per frame. The endpointer is driven two ways: ``feed`` called
from Python per frame (what a Python caller pays, call overhead included) and ``feed_frames``
(the frame loop inside the module, as the compiled call loop drives it).
"""

import numpy as np
import pytest

from parley.core import _bargein_c, _bargein_py, _endpointer_c, _endpointer_py, _playout_c, _playout_py
from parley.core.bargein import BargeInSettings
from parley.core.endpointer import EndpointerSettings

FRAMES = 50
ENDPOINTER_FRAMES = 1000
FRAME = 320
TWINS = pytest.mark.parametrize("impl", [_endpointer_py, _endpointer_c], ids=["py", "c"])
DECISIONS = np.random.default_rng(0).random(ENDPOINTER_FRAMES * 20) < 0.6
"""A long run of speech decisions with pauses of every length, read 1,000 frames at a time."""


def endpointer_round(impl, per_frame):
    endpointer = impl.Endpointer(EndpointerSettings(), 16000)
    decisions = DECISIONS.astype(np.uint8)
    rounds = len(DECISIONS) // ENDPOINTER_FRAMES
    codes, samples = np.zeros(ENDPOINTER_FRAMES, np.int32), np.zeros(ENDPOINTER_FRAMES, np.int64)
    state = {"round": 0}

    def feed_per_frame():
        block = slice(state["round"] % rounds * ENDPOINTER_FRAMES, (state["round"] % rounds + 1) * ENDPOINTER_FRAMES)
        first = state["round"] * ENDPOINTER_FRAMES * FRAME
        for k, is_speech in enumerate(DECISIONS[block].tolist()):
            endpointer.feed(is_speech, first + k * FRAME)
        state["round"] += 1

    def feed_frames():
        block = slice(state["round"] % rounds * ENDPOINTER_FRAMES, (state["round"] % rounds + 1) * ENDPOINTER_FRAMES)
        endpointer.feed_frames(decisions[block], state["round"] * ENDPOINTER_FRAMES * FRAME, codes, samples)
        state["round"] += 1

    return feed_per_frame if per_frame else feed_frames


@TWINS
def test_endpointer_feed_called_per_frame(benchmark, impl):
    benchmark.group = "endpointer-frame"
    benchmark(endpointer_round(impl, per_frame=True))


@TWINS
def test_endpointer_feed_frames(benchmark, impl):
    benchmark.group = "endpointer-frame"
    benchmark(endpointer_round(impl, per_frame=False))


@pytest.mark.parametrize("impl", [_bargein_py, _bargein_c], ids=["py", "c"])
def test_bargein_feed(benchmark, impl):
    benchmark.group = "bargein-frame"
    rng = np.random.default_rng(1)
    far = (rng.standard_normal(FRAMES * FRAME) * 0.1).astype(np.float32)
    near = (np.roll(far, 960) * 0.3 + rng.standard_normal(FRAMES * FRAME) * 0.001).astype(np.float32)
    detector = impl.BargeInDetector(BargeInSettings(), 16000)
    detector.agent_speaking = True
    frames = [(near[k * FRAME:(k + 1) * FRAME], far[k * FRAME:(k + 1) * FRAME]) for k in range(FRAMES)]
    state = {"position": 0}

    def one_second():
        position = state["position"]
        for k, (near_frame, far_frame) in enumerate(frames):
            detector.feed(near_frame, far_frame, position + k * FRAME)
        state["position"] = position + FRAMES * FRAME

    benchmark(one_second)


@pytest.mark.parametrize("impl", [_playout_py, _playout_c], ids=["py", "c"])
def test_playout_push_and_play(benchmark, impl):
    benchmark.group = "playout-frame"
    playout = impl.Playout(16000)
    second = (np.sin(np.arange(FRAMES * FRAME) / 9.0) * 0.3).astype(np.float32)
    out = np.empty(FRAME, np.float32)

    def one_second():
        playout.push(second, 1)
        for _ in range(FRAMES):
            playout.next_frame_into(out)

    benchmark(one_second)
