import os
import warnings

import numpy as np
import pytest

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)

# Decoded values of selected codes, from the ITU-T G.711 tables.
ULAW_DECODED = {0x00: -32124, 0x0F: -16764, 0x7E: -8, 0x7F: 0, 0x80: 32124, 0xF0: 120, 0xFE: 8, 0xFF: 0}
ALAW_DECODED = {0x55: -8, 0xD5: 8, 0x2A: -32256, 0xAA: 32256, 0x54: -24, 0xD4: 24, 0x35: -8448, 0xB5: 8448}


def test_compiled_codec_is_built():
    """The build must not silently fall back to Python (aiohttp's lesson)."""
    if os.environ.get("PARLEY_NO_EXTENSIONS") == "1":
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import codecs

    assert codecs.COMPILED
    assert codecs.ulaw_encode.__module__ == "parley.core._g711"


def test_ulaw_decodes_itu_table_values(g711):
    codes = bytes(ULAW_DECODED)
    assert g711.ulaw_decode(codes).tolist() == list(ULAW_DECODED.values())


def test_alaw_decodes_itu_table_values(g711):
    codes = bytes(ALAW_DECODED)
    assert g711.alaw_decode(codes).tolist() == list(ALAW_DECODED.values())


def test_silence_and_extremes_encode_to_known_codes(g711):
    assert g711.ulaw_encode(np.array([0, 32767, -32768], np.int16)) == bytes([0xFF, 0x80, 0x00])
    assert g711.alaw_encode(np.array([0, 32767, -32768], np.int16)) == bytes([0xD5, 0xAA, 0x2A])


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_every_pcm_value_matches_the_reference_codec(g711, law):
    audioop = pytest.importorskip("audioop")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        encode = audioop.lin2ulaw if law == "ulaw" else audioop.lin2alaw
        decode = audioop.ulaw2lin if law == "ulaw" else audioop.alaw2lin
        expected_codes = encode(ALL_PCM.tobytes(), 2)
        expected_pcm = np.frombuffer(decode(bytes(range(256)), 2), dtype=np.int16)
    assert getattr(g711, f"{law}_encode")(ALL_PCM) == expected_codes
    assert np.array_equal(getattr(g711, f"{law}_decode")(bytes(range(256))), expected_pcm)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_round_trip_of_all_65536_values_is_stable_and_bounded(g711, law):
    encode, decode = getattr(g711, f"{law}_encode"), getattr(g711, f"{law}_decode")
    codes = encode(ALL_PCM)
    decoded = decode(codes)
    assert encode(decoded) == codes, "decode then encode must give the same code"
    error = np.abs(decoded.astype(np.int32) - ALL_PCM)
    # Quantization error stays within half the widest segment step (1024 for mu-law, 1024 for A-law).
    assert error.max() <= 1024 + 8
    small = np.abs(ALL_PCM.astype(np.int32)) < 64
    assert error[small].max() <= 8, "near zero the step is fine-grained"


def test_bytes_input_is_little_endian_pcm16(g711):
    pcm = np.array([1000, -1000, 12345], dtype=np.int16)
    assert g711.ulaw_encode(pcm.astype("<i2").tobytes()) == g711.ulaw_encode(pcm)


def test_pcm16_float32_round_trip_is_exact(g711):
    assert np.array_equal(g711.float32_to_pcm16(g711.pcm16_to_float32(ALL_PCM)), ALL_PCM)


def test_float32_to_pcm16_clips_out_of_range(g711):
    out = g711.float32_to_pcm16(np.array([1.5, -2.0, 0.99999], dtype=np.float32))
    assert out.tolist() == [32767, -32768, 32767]


def test_compiled_into_functions_refuse_a_short_output_buffer():
    if os.environ.get("PARLEY_NO_EXTENSIONS") == "1":
        pytest.skip("PARLEY_NO_EXTENSIONS=1 forces pure Python")
    from parley.core import _g711

    with pytest.raises(ValueError, match="output buffer holds 2 samples, input has 3"):
        _g711.ulaw_encode_into(np.zeros(3, np.int16), bytearray(2))


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_into_variants_match_the_allocating_ones(g711, law):
    pcm = (np.sin(np.arange(160) / 5.0) * 20000).astype(np.int16)
    codes = bytearray(160)
    getattr(g711, f"{law}_encode_into")(pcm, codes)
    assert bytes(codes) == getattr(g711, f"{law}_encode")(pcm)
    decoded = np.empty(160, np.int16)
    getattr(g711, f"{law}_decode_into")(bytes(codes), decoded)
    assert np.array_equal(decoded, getattr(g711, f"{law}_decode")(bytes(codes)))
    as_float = np.empty(160, np.float32)
    g711.pcm16_to_float32_into(decoded, as_float)
    back = np.empty(160, np.int16)
    g711.float32_to_pcm16_into(as_float, back)
    assert np.array_equal(back, decoded)
