"""Instructions per 20 ms frame (valgrind callgrind) for the whole CallLoop and webrtcvad's ``is_speech``.

Wall-clock time drifts on a shared machine; instruction counts repeat exactly. The frames are a
real telephone turn (beckett.wav over 20 ms G.711 RTP, as in tests/bench/test_bench_call_loop.py).
Each case runs twice under callgrind, over 0 and over N frames; the difference over N is its cost
per frame, start-up excluded. Cases:

* ``call-loop``: the loop as it runs (decode, jitter buffer, resample, two-stage VAD with Silero
  on the frames stage (a) is unsure of, endpointer, playout, encode), with the adapter's calls;
* ``call-loop-no-silero``: the same frames and the same path, Silero's probabilities replayed
  from a real run, so Silero's share drops out;
* ``webrtcvad``: ``is_speech`` alone on the same frames (the peer).

Needs Debian ``valgrind`` and the fetched models. Run ``.venv/bin/python scripts/callgrind_call_loop.py``
(a few minutes); ``PARLEY_NO_EXTENSIONS=1`` counts the plain-Python twins instead.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FRAMES = 500
FRAME = 160


def silero():
    from parley.appliance.config import load_settings
    from parley.core.silero import SileroVad

    return SileroVad(load_settings().models_dir / "silero-vad" / "silero_vad.onnx")


def prepare(folder):
    """The RTP payloads (and Silero's probabilities on them) into ``folder``, for the runs under valgrind."""
    from parley.appliance.config import load_settings
    from parley.core import codecs
    from parley.core.evalset import build_turn_set
    from parley.core.silero import RecordedSilero

    models = load_settings().models_dir
    turn = next(t for t in build_turn_set(models, snrs=(None,)) if t.name.startswith("beckett") and t.channel == "g711")
    audio = np.resize(turn.audio, FRAMES * FRAME)
    payloads = np.stack([np.frombuffer(codecs.ulaw_encode(codecs.float32_to_pcm16(audio[k * FRAME:(k + 1) * FRAME])),
                                       np.uint8) for k in range(FRAMES)])
    np.save(folder / "payloads.npy", payloads)
    recorded = RecordedSilero(silero(), [])
    feed(recorded, payloads, FRAMES)
    np.save(folder / "probabilities.npy", np.array(recorded.probabilities))
    return len(recorded.probabilities)


def feed(model, payloads, count):
    from parley.core.call_loop import CallLoop

    loop = CallLoop(model)
    packets = [payload.tobytes() for payload in payloads]
    for k in range(count):
        loop.feed_rtp(k, k * FRAME, packets[k], k * 20_000_000)
        loop.next_frame()
        while loop.next_event() is not None:
            pass


def run(case, folder, count):
    """Feed ``count`` frames to ``case`` (inside valgrind)."""
    payloads = np.load(folder / "payloads.npy")
    if case == "webrtcvad":
        import webrtcvad

        from parley.core import codecs

        peer = webrtcvad.Vad(2)
        frames = [codecs.ulaw_decode(payload.tobytes()).tobytes() for payload in payloads]
        for frame in frames[:count]:
            peer.is_speech(frame, 8000)
    elif case == "call-loop":
        feed(silero(), payloads, count)
    else:
        from parley.core.silero import ReplayedSilero

        feed(ReplayedSilero(silero(), np.load(folder / "probabilities.npy").tolist()), payloads, count)


def instructions(case, folder, count):
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out", sys.executable, __file__,
         "--run", case, str(folder), str(count)], capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", out.stderr).group(1))


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--run":
        run(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
        return
    from parley.core import call_loop

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        windows = prepare(folder)
        print(f"{FRAMES} frames of beckett.wav over G.711 RTP; Silero scored {windows} windows; "
              f"call loop {'compiled' if call_loop.COMPILED else 'plain-Python twin'}")
        for case in ("call-loop", "call-loop-no-silero", "webrtcvad"):
            per_frame = (instructions(case, folder, FRAMES) - instructions(case, folder, 0)) / FRAMES
            print(f"{case:<20} {per_frame:10.0f} instructions per 20 ms frame at 8 kHz")


if __name__ == "__main__":
    main()
