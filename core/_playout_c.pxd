# C types for the pure-Python playout in _playout_py.py, compiled through the _playout_c.py
# symlink. Keep the names in step with that module.

cimport cython

cdef Py_ssize_t MAX_UTTERANCES
cdef double FLOAT32_MAX


@cython.final
cdef class Playout:
    cdef readonly Py_ssize_t frame_samples
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t queued_samples
    cdef readonly long long current_utterance_id
    cdef readonly long long samples_repaired
    cdef readonly float[::1] reference
    cdef float[::1] _ring
    cdef Py_ssize_t _read
    cdef long long[::1] _ids
    cdef long long[::1] _pushed
    cdef long long[::1] _played
    cdef long long[::1] _dropped
    cdef Py_ssize_t _first
    cdef Py_ssize_t _count

    @cython.locals(n=Py_ssize_t, newest=Py_ssize_t, write=Py_ssize_t, i=Py_ssize_t, x=cython.float)
    cpdef push(self, const float[::1] samples, long long utterance_id)
    @cython.locals(available=Py_ssize_t, read=Py_ssize_t, i=Py_ssize_t, remaining=cython.longlong,
                   slot=Py_ssize_t, left=cython.longlong, taken=cython.longlong)
    cpdef bint next_frame_into(self, float[::1] out) except -1
    @cython.locals(dropped=Py_ssize_t, k=Py_ssize_t, slot=Py_ssize_t)
    cpdef Py_ssize_t flush(self) noexcept
    @cython.locals(slot=Py_ssize_t)
    cpdef Py_ssize_t played_samples(self, long long utterance_id) except -1
    @cython.locals(slot=Py_ssize_t)
    cpdef Py_ssize_t dropped_samples(self, long long utterance_id) except -1
    @cython.locals(k=Py_ssize_t, slot=Py_ssize_t)
    cdef Py_ssize_t _find(self, long long utterance_id) noexcept nogil
    @cython.locals(oldest=Py_ssize_t, slot=Py_ssize_t)
    cdef Py_ssize_t _open_slot(self, long long utterance_id) except -1
    @cython.locals(k=Py_ssize_t, slot=Py_ssize_t)
    cdef Py_ssize_t _playing_slot(self) noexcept nogil
