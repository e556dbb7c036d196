"""The streaming resampler: the filter spec measured, polyphase and streaming exact, bad input survived."""

import itertools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import twin_or_compiled

from parley.core import resample
from parley.core._resample_py import (
    PASSBAND_RIPPLE_DB,
    STOPBAND_ATTENUATION_DB,
    SUPPORTED_RATES,
    UnsupportedRateError,
    design_filter,
)

RATE_PAIRS = list(itertools.permutations(SUPPORTED_RATES, 2))
CALL_PAIRS = [(8000, 16000), (16000, 8000), (22050, 8000), (22050, 16000), (24000, 8000), (24000, 16000)]
NO_EXTENSIONS = os.environ.get("PARLEY_NO_EXTENSIONS") == "1"


@pytest.fixture(params=["py", "c"])
def impl(request):
    """The numpy twin and the compiled resampler, run through the same tests."""
    return twin_or_compiled(request, "_resample_py", "_resample")


def _db(ratio):
    return 20 * np.log10(np.maximum(ratio, 1e-12))


def _tone(freq, rate, seconds, amplitude=0.5):
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def _fit_tone(y, freq, rate, delay):
    """Least-squares sine/cosine at ``freq`` on output samples lined up by ``delay``; returns (sin, cos, residual)."""
    t = (np.arange(len(y)) - delay) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y.astype(np.float64), rcond=None)
    return coef[0], coef[1], y - basis @ coef


def test_compiled_resampler_is_built():
    """The build must not silently fall back to numpy (aiohttp's lesson)."""
    if NO_EXTENSIONS:
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    assert resample.COMPILED
    assert resample.StreamResampler.__module__ == "parley.core._resample"


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_designed_filter_meets_the_documented_spec(in_rate, out_rate):
    design = design_filter(in_rate, out_rate)
    taps = design.taps.astype(np.float64) / design.up
    n_fft = 1 << int(np.ceil(np.log2(len(taps) * 8)))
    gain = np.abs(np.fft.rfft(taps, n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1 / (in_rate * design.up))
    passband = _db(gain[freqs <= design.passband_edge_hz])
    assert np.abs(passband).max() <= PASSBAND_RIPPLE_DB
    assert -_db(gain[freqs >= design.stopband_edge_hz].max()) >= STOPBAND_ATTENUATION_DB
    assert design.passband_edge_hz == 0.9 * min(in_rate, out_rate) / 2
    assert design.stopband_edge_hz == min(in_rate, out_rate) / 2


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_sine_sweep_keeps_the_passband_and_removes_everything_else(impl, in_rate, out_rate):
    """Tones in the passband come out at their level, on time, with nothing else beside them;
    tones above the new Nyquist do not come out at all."""
    resampler = impl.StreamResampler(in_rate, out_rate)
    settle = 2 * resampler.group_delay + 8
    for freq in np.linspace(50, resampler.design.passband_edge_hz, 7):
        resampler.reset()
        y = resampler.process(_tone(freq, in_rate, 0.25))[settle:]
        sine, cosine, residual = _fit_tone(y, freq, out_rate, resampler.group_delay - settle)
        assert abs(_db(np.hypot(sine, cosine) / 0.5)) <= PASSBAND_RIPPLE_DB, f"{freq:.0f} Hz"
        assert abs(cosine) <= 1e-3 * abs(sine), f"{freq:.0f} Hz is not delayed by exactly group_delay"
        assert _db(np.sqrt(np.mean(residual**2)) / (0.5 / np.sqrt(2))) <= -STOPBAND_ATTENUATION_DB, f"{freq:.0f} Hz"
    if in_rate > out_rate:
        for freq in np.linspace(out_rate / 2, 0.98 * in_rate / 2, 5):
            resampler.reset()
            y = resampler.process(_tone(freq, in_rate, 0.25))[settle:]
            assert _db(np.sqrt(np.mean(y.astype(np.float64) ** 2)) / (0.5 / np.sqrt(2))) <= -STOPBAND_ATTENUATION_DB, (
                f"{freq:.0f} Hz leaks through"
            )


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_impulse_response_is_the_designed_filter(impl, in_rate, out_rate):
    """An impulse at input sample j comes out as taps[n * down - j * up]: every polyphase branch is right."""
    resampler = impl.StreamResampler(in_rate, out_rate)
    taps, up, down = resampler.design.taps, resampler.up, resampler.down
    for j in (0, 1, 5):
        resampler.reset()
        impulse = np.zeros(len(taps) // up + 16, np.float32)
        impulse[j] = 1.0
        y = np.concatenate([resampler.process(impulse), resampler.flush()])
        index = np.arange(len(y)) * down - j * up
        inside = (index >= 0) & (index < len(taps))
        expected = np.where(inside, taps[np.clip(index, 0, len(taps) - 1)], 0)
        np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000), (22050, 16000), (8000, 22050)])
# The impl fixture hands over a module, which no example can change.
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.integers(0, 1500), max_size=12), seed=st.integers(0, 2**32 - 1))
def test_chunked_output_equals_one_shot_output(impl, in_rate, out_rate, chunks, seed):
    """State carries across chunks of any size (0 and 1 included): no clicks at chunk boundaries."""
    x = np.random.default_rng(seed).uniform(-1, 1, sum(chunks)).astype(np.float32)
    whole = impl.StreamResampler(in_rate, out_rate)
    expected = np.concatenate([whole.process(x), whole.flush()])
    pieces = impl.StreamResampler(in_rate, out_rate)
    bounds = np.cumsum([0] + chunks)
    out = [pieces.process(x[a:b]) for a, b in itertools.pairwise(bounds)]
    np.testing.assert_array_equal(np.concatenate(out + [pieces.flush()]), expected)


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_output_length_is_the_input_span_plus_the_group_delay(impl, in_rate, out_rate):
    """After ``flush`` and dropping ``group_delay`` samples, output and input cover the same time."""
    resampler = impl.StreamResampler(in_rate, out_rate)
    for n in (0, 1, 999):
        y = resampler.process(np.ones(n, np.float32))
        tail = resampler.flush()
        assert len(tail) == resampler.group_delay
        assert len(y) + len(tail) == -(-n * resampler.up // resampler.down) + resampler.group_delay


@pytest.mark.parametrize(("in_rate", "out_rate"), CALL_PAIRS)
def test_compiled_and_twin_agree(in_rate, out_rate):
    if NO_EXTENSIONS:
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import _resample, _resample_py

    x = np.random.default_rng(7).uniform(-1, 1, 9000).astype(np.float32)
    compiled, twin = _resample.StreamResampler(in_rate, out_rate), _resample_py.StreamResampler(in_rate, out_rate)
    y_c = np.concatenate([compiled.process(x[:4001]), compiled.process(x[4001:]), compiled.flush()])
    y_py = np.concatenate([twin.process(x[:123]), twin.process(x[123:]), twin.flush()])
    # Same taps, same summation order: equal to float32 rounding (bit-equal where the C compiler
    # does not fuse multiply-adds).
    np.testing.assert_allclose(y_c, y_py, rtol=0, atol=1e-6)


def test_process_into_writes_into_a_caller_buffer_sized_by_max_output(impl):
    resampler = impl.StreamResampler(22050, 8000)
    frame = _tone(440, 22050, 0.02)
    out = np.full(resampler.max_output(len(frame)), np.nan, np.float32)
    for _ in range(20):
        written = resampler.process_into(frame, out)
        assert written <= len(out)
        assert np.isfinite(out[:written]).all()
    assert resampler.process_into(np.zeros(0, np.float32), out) == 0


def test_same_rate_passes_samples_through_unchanged(impl):
    resampler = impl.StreamResampler(16000, 16000)
    x = np.random.default_rng(1).uniform(-1, 1, 777).astype(np.float32)
    assert resampler.group_delay == 0
    np.testing.assert_array_equal(resampler.process(x), x)
    assert len(resampler.flush()) == 0


def test_reset_starts_a_new_stream(impl):
    resampler = impl.StreamResampler(8000, 16000)
    x = _tone(300, 8000, 0.05)
    first = resampler.process(x)
    resampler.process(_tone(1000, 8000, 0.03))
    resampler.reset()
    np.testing.assert_array_equal(resampler.process(x), first)


@pytest.mark.parametrize("bad", [44100, 0, -8000, 16000.0, "8000", None, True])
def test_unsupported_rate_is_refused_naming_the_supported_ones(impl, bad):
    with pytest.raises(UnsupportedRateError, match="8000, 16000, 22050, 24000, 48000 Hz"):
        impl.StreamResampler(bad, 8000)
    with pytest.raises(UnsupportedRateError, match="out_rate"):
        impl.StreamResampler(8000, bad)


def test_unsupported_rate_error_is_a_value_error():
    assert issubclass(UnsupportedRateError, ValueError)
    assert resample.UnsupportedRateError is UnsupportedRateError


def test_nonfinite_input_is_silenced_and_does_not_poison_the_stream(impl):
    """NaN and inf become 0 before filtering: the output is what silence in their place gives."""
    x = _tone(500, 16000, 0.1)
    bad = x.copy()
    bad[[10, 500, 501]] = [np.nan, np.inf, -np.inf]
    cleaned = x.copy()
    cleaned[[10, 500, 501]] = 0
    y = impl.StreamResampler(16000, 8000).process(bad)
    assert np.isfinite(y).all()
    np.testing.assert_array_equal(y, impl.StreamResampler(16000, 8000).process(cleaned))


def test_process_into_refuses_a_short_output_buffer(impl):
    resampler = impl.StreamResampler(8000, 16000)
    with pytest.raises(ValueError, match="size it with max_output"):
        resampler.process_into(np.zeros(160, np.float32), np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="flush writes group_delay"):
        resampler.flush_into(np.zeros(1, np.float32))


def test_process_into_refuses_a_buffer_that_is_not_float32(impl):
    resampler = impl.StreamResampler(8000, 16000)
    with pytest.raises(ValueError):
        resampler.process_into(np.zeros(160, np.float64), np.zeros(320, np.float32))


def test_process_converts_any_array_like_to_float32(impl):
    resampler = impl.StreamResampler(16000, 8000)
    y = resampler.process(np.zeros(320, np.int16).tolist())
    assert y.dtype == np.float32
    assert len(y) == 160
