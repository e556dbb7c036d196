# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""G.711 mu-law / A-law and PCM16 <-> float32, table driven, allocation-free in the loops.

The tables come from the formulas in ``_g711_py`` so the compiled and the Python codec cannot
disagree. Every ``*_into`` function writes into a caller-owned buffer and releases the GIL.
"""

from libc.math cimport rint

import numpy as np

from parley.core import _g711_py

cdef unsigned char[::1] _ULAW_ENC = np.ascontiguousarray(_g711_py.ULAW_ENCODE)
cdef short[::1] _ULAW_DEC = np.ascontiguousarray(_g711_py.ULAW_DECODE)
cdef unsigned char[::1] _ALAW_ENC = np.ascontiguousarray(_g711_py.ALAW_ENCODE)
cdef short[::1] _ALAW_DEC = np.ascontiguousarray(_g711_py.ALAW_DECODE)


cdef inline void _encode(const short[::1] pcm, unsigned char[::1] out,
                         const unsigned char[::1] table) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(pcm.shape[0]):
        out[i] = table[<int>pcm[i] + 32768]


cdef inline void _decode(const unsigned char[::1] data, short[::1] out,
                         const short[::1] table) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(data.shape[0]):
        out[i] = table[data[i]]


cdef _check_sizes(Py_ssize_t n_in, Py_ssize_t n_out):
    if n_out < n_in:
        raise ValueError(f"output buffer holds {n_out} samples, input has {n_in}")


def _pcm_view(pcm):
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        return np.frombuffer(pcm, dtype="<i2")
    return np.ascontiguousarray(pcm, dtype=np.int16)


def ulaw_encode_into(const short[::1] pcm, unsigned char[::1] out):
    """Encode ``pcm`` into ``out`` (at least as long); no allocation."""
    _check_sizes(pcm.shape[0], out.shape[0])
    with nogil:
        _encode(pcm, out, _ULAW_ENC)


def ulaw_decode_into(const unsigned char[::1] data, short[::1] out):
    """Decode ``data`` into ``out`` (at least as long); no allocation."""
    _check_sizes(data.shape[0], out.shape[0])
    with nogil:
        _decode(data, out, _ULAW_DEC)


def alaw_encode_into(const short[::1] pcm, unsigned char[::1] out):
    """Encode ``pcm`` into ``out`` (at least as long); no allocation."""
    _check_sizes(pcm.shape[0], out.shape[0])
    with nogil:
        _encode(pcm, out, _ALAW_ENC)


def alaw_decode_into(const unsigned char[::1] data, short[::1] out):
    """Decode ``data`` into ``out`` (at least as long); no allocation."""
    _check_sizes(data.shape[0], out.shape[0])
    with nogil:
        _decode(data, out, _ALAW_DEC)


def ulaw_encode(pcm):
    """PCM16 samples (array or little-endian bytes) to mu-law bytes."""
    src = _pcm_view(pcm)
    out = bytearray(src.shape[0])
    ulaw_encode_into(src, out)
    return bytes(out)


def ulaw_decode(data):
    """Mu-law bytes to an int16 array."""
    out = np.empty(len(data), dtype=np.int16)
    ulaw_decode_into(np.frombuffer(data, dtype=np.uint8), out)
    return out


def alaw_encode(pcm):
    """PCM16 samples (array or little-endian bytes) to A-law bytes."""
    src = _pcm_view(pcm)
    out = bytearray(src.shape[0])
    alaw_encode_into(src, out)
    return bytes(out)


def alaw_decode(data):
    """A-law bytes to an int16 array."""
    out = np.empty(len(data), dtype=np.int16)
    alaw_decode_into(np.frombuffer(data, dtype=np.uint8), out)
    return out


def pcm16_to_float32_into(const short[::1] pcm, float[::1] out):
    """PCM16 to float32 in [-1, 1), into ``out``."""
    _check_sizes(pcm.shape[0], out.shape[0])
    cdef Py_ssize_t i
    with nogil:
        for i in range(pcm.shape[0]):
            out[i] = pcm[i] / 32768.0


def float32_to_pcm16_into(const float[::1] samples, short[::1] out):
    """Float32 to PCM16 (rounded half to even, clipped), into ``out``."""
    _check_sizes(samples.shape[0], out.shape[0])
    cdef Py_ssize_t i
    cdef double v
    with nogil:
        for i in range(samples.shape[0]):
            v = samples[i] * 32768.0
            if v >= 32767.0:
                out[i] = 32767
            elif v <= -32768.0:
                out[i] = -32768
            else:
                out[i] = <short>rint(v)


def pcm16_to_float32(pcm):
    """PCM16 to float32 in [-1, 1)."""
    src = _pcm_view(pcm)
    out = np.empty(src.shape[0], dtype=np.float32)
    pcm16_to_float32_into(src, out)
    return out


def float32_to_pcm16(samples):
    """Float32 to PCM16, rounded and clipped to the int16 range."""
    src = np.ascontiguousarray(samples, dtype=np.float32)
    out = np.empty(src.shape[0], dtype=np.int16)
    float32_to_pcm16_into(src, out)
    return out
