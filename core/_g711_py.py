"""G.711 mu-law and A-law in plain Python: the reference the compiled codec is built from.

The per-sample formulas follow the ITU-T G.711 segment tables (as in the public-domain Sun
``g711.c``). They fill 64 Ki-entry encode tables and 256-entry decode tables once; the
numpy functions here are the pure-Python twin of ``_g711`` (used with PARLEY_NO_EXTENSIONS=1).
"""

import numpy as np

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
_ULAW_SEG_END = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_ALAW_SEG_END = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _segment(value, ends):
    for seg, end in enumerate(ends):
        if value <= end:
            return seg
    return len(ends)


def linear_to_ulaw(sample):
    """One 16-bit PCM sample to its mu-law byte."""
    value = sample >> 2
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(value, _ULAW_SEG_END)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0xF)) ^ mask


def ulaw_to_linear(code):
    """One mu-law byte to its 16-bit PCM sample."""
    code = ~code & 0xFF
    t = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code & 0x70) >> 4)
    return _ULAW_BIAS - t if code & 0x80 else t - _ULAW_BIAS


def linear_to_alaw(sample):
    """One 16-bit PCM sample to its A-law byte."""
    value = sample >> 3
    if value >= 0:
        mask = 0xD5
    else:
        mask, value = 0x55, -value - 1
    seg = _segment(value, _ALAW_SEG_END)
    if seg >= 8:
        return 0x7F ^ mask
    shift = 1 if seg < 2 else seg
    return ((seg << 4) | ((value >> shift) & 0x0F)) ^ mask


def alaw_to_linear(code):
    """One A-law byte to its 16-bit PCM sample."""
    code ^= 0x55
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if code & 0x80 else -t


def _encode_table(encode):
    return np.array([encode(s) for s in range(-32768, 32768)], dtype=np.uint8)


def _decode_table(decode):
    return np.array([decode(c) for c in range(256)], dtype=np.int16)


ULAW_ENCODE = _encode_table(linear_to_ulaw)
ULAW_DECODE = _decode_table(ulaw_to_linear)
ALAW_ENCODE = _encode_table(linear_to_alaw)
ALAW_DECODE = _decode_table(alaw_to_linear)


def _as_pcm16(pcm):
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        return np.frombuffer(pcm, dtype="<i2")
    return np.asarray(pcm, dtype=np.int16)


def ulaw_encode(pcm):
    """PCM16 samples (array or little-endian bytes) to mu-law bytes."""
    return ULAW_ENCODE[_as_pcm16(pcm).astype(np.int32) + 32768].tobytes()


def ulaw_decode(data):
    """Mu-law bytes to an int16 array."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(pcm):
    """PCM16 samples (array or little-endian bytes) to A-law bytes."""
    return ALAW_ENCODE[_as_pcm16(pcm).astype(np.int32) + 32768].tobytes()


def alaw_decode(data):
    """A-law bytes to an int16 array."""
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def pcm16_to_float32(pcm):
    """PCM16 to float32 in [-1, 1)."""
    return _as_pcm16(pcm).astype(np.float32) / np.float32(32768.0)


def float32_to_pcm16(samples):
    """Float32 to PCM16, rounded and clipped to the int16 range."""
    scaled = np.rint(np.asarray(samples, dtype=np.float32) * np.float32(32768.0))
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def _encode_into(table, pcm, out):
    if len(out) < len(pcm):
        raise ValueError(f"output buffer holds {len(out)} samples, input has {len(pcm)}")
    np.frombuffer(out, dtype=np.uint8)[: len(pcm)] = table[np.asarray(pcm, dtype=np.int32) + 32768]


def _decode_into(table, data, out):
    if len(out) < len(data):
        raise ValueError(f"output buffer holds {len(out)} samples, input has {len(data)}")
    out[: len(data)] = table[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode_into(pcm, out):
    """Encode ``pcm`` into the writable buffer ``out`` (at least as long)."""
    _encode_into(ULAW_ENCODE, pcm, out)


def ulaw_decode_into(data, out):
    """Decode ``data`` into the int16 array ``out`` (at least as long)."""
    _decode_into(ULAW_DECODE, data, out)


def alaw_encode_into(pcm, out):
    """Encode ``pcm`` into the writable buffer ``out`` (at least as long)."""
    _encode_into(ALAW_ENCODE, pcm, out)


def alaw_decode_into(data, out):
    """Decode ``data`` into the int16 array ``out`` (at least as long)."""
    _decode_into(ALAW_DECODE, data, out)


def pcm16_to_float32_into(pcm, out):
    """PCM16 to float32 in [-1, 1), into ``out``."""
    out[: len(pcm)] = np.asarray(pcm, dtype=np.float32) / np.float32(32768.0)


def float32_to_pcm16_into(samples, out):
    """Float32 to PCM16 (rounded half to even, clipped), into ``out``."""
    out[: len(samples)] = float32_to_pcm16(samples)
