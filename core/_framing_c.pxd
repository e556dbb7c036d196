# C types for the pure-Python framer in _framing_py.py, compiled through the _framing_c.py
# symlink. Keep the names in step with that module. The class is final so its methods are
# called directly, without a Python override check.

cimport cython

cdef double FLOAT32_MAX


@cython.final
cdef class Framer:
    cdef readonly int sample_rate
    cdef readonly Py_ssize_t frame_size
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t buffered
    cdef readonly long long next_frame_position
    cdef readonly long long dropped_frames
    cdef readonly long long nonfinite_samples
    cdef float[::1] _ring
    cdef Py_ssize_t _read
    cdef Py_ssize_t _write

    cpdef void reset(self)
    @cython.locals(i=Py_ssize_t, v=float)
    cpdef void push(self, const float[::1] samples)
    @cython.locals(i=Py_ssize_t)
    cpdef void push_pcm16(self, const short[::1] pcm)
    cdef void _store(self, float v) noexcept nogil
    cpdef bint pop_into(self, float[::1] out) except -1
