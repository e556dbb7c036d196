"""Instructions per 20 ms frame (valgrind callgrind) for stage (a) and webrtcvad's ``is_speech``.

Wall-clock time drifts on a shared machine; instruction counts repeat exactly. Each detector
runs twice under callgrind, over 0 and over N frames of the same audio; the difference over N
is its cost per frame, start-up excluded. Needs Debian ``valgrind``. Run:
``.venv/bin/python scripts/callgrind_vad.py`` (about a minute).
"""

import re
import subprocess
import sys
import tempfile

import numpy as np

FRAMES = 2000
RATE = 16000
FRAME = 320


def frames():
    rng = np.random.default_rng(0)
    t = np.arange(FRAME * FRAMES) / RATE
    voiced = np.sin(2 * np.pi * 140 * t) * np.sin(2 * np.pi * 3 * t) ** 2 * 0.1
    audio = (voiced + rng.standard_normal(len(t)) * 0.003).astype(np.float32)
    return [audio[k * FRAME:(k + 1) * FRAME] for k in range(FRAMES)]


def run(detector, count):
    """Feed ``count`` frames to ``detector`` (inside valgrind)."""
    audio = frames()
    if detector == "stage-a":
        from parley.core import vad

        process = vad.NoiseFloorVad(RATE, 20).process
    else:
        import webrtcvad

        from parley.core import codecs

        peer = webrtcvad.Vad(3)
        audio = [codecs.float32_to_pcm16(frame).tobytes() for frame in audio]

        def process(frame):
            return peer.is_speech(frame, RATE)
    for frame in audio[:count]:
        process(frame)


def instructions(detector, count):
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", sys.executable, __file__,
             "--run", detector, str(count)], capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", out.stderr).group(1))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--run":
        run(sys.argv[2], int(sys.argv[3]))
        return
    for detector in ("stage-a", "webrtcvad"):
        per_frame = (instructions(detector, FRAMES) - instructions(detector, 0)) / FRAMES
        print(f"{detector:<10} {per_frame:10.0f} instructions per 20 ms frame at 16 kHz")


if __name__ == "__main__":
    main()
