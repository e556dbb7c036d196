# C types for the pure-Python jitter buffer in _jitter_py.py, compiled through the _jitter_c.py
# symlink. Keep the names in step with that module. The class is final so its methods are called
# directly, without a Python override check.

cimport cython

cdef int NORMAL, CONCEALED, SILENCE
cdef long long SEQ_MASK, TIMESTAMP_MASK
cdef long long JITTER_MULTIPLE, EXCESS_FRAMES_TO_SKIP, MAX_MISORDER, MIN_SLOTS, MAX_ARRIVAL_GAP_NS


@cython.final
cdef class JitterBuffer:
    cdef readonly int frame_samples
    cdef readonly int clock_rate
    cdef readonly int min_depth
    cdef readonly int max_depth
    cdef readonly int fade_frames
    cdef readonly int shrink_after_frames
    cdef readonly int depth
    cdef readonly long long received
    cdef readonly long long duplicates
    cdef readonly long long late
    cdef readonly long long strays
    cdef readonly long long malformed
    cdef readonly long long lost
    cdef readonly long long concealed
    cdef readonly long long underruns
    cdef readonly long long skipped
    cdef readonly long long resyncs
    cdef Py_ssize_t _n_slots
    cdef short[:, ::1] _slots
    cdef long long[::1] _slot_seq
    cdef short[::1] _last
    cdef int[::1] _fade_gain
    cdef long long _jitter16
    cdef bint _have_stream
    cdef bint _have_transit
    cdef bint _have_last
    cdef bint _playing
    cdef long long _highest
    cdef long long _next_play
    cdef long long _last_arrival_ns
    cdef long long _last_timestamp
    cdef int _wanted
    cdef int _calm_run
    cdef int _excess_run
    cdef int _conceal_run
    cdef long long _probation_seq

    cpdef void reset(self)
    @cython.locals(delta=cython.longlong, ext=cython.longlong, start=cython.longlong, slot=Py_ssize_t)
    cpdef bint put(self, long long seq, long long timestamp, const short[::1] payload, long long arrival_ns) except -1
    cdef long long _window_start(self) noexcept nogil
    cdef void _store(self, Py_ssize_t slot, long long ext, const short[::1] payload) noexcept
    cdef bint _stray(self, long long seq, long long timestamp, const short[::1] payload, long long arrival_ns) noexcept
    @cython.locals(gap_ns=cython.longlong, sent=cython.longlong, d=cython.longlong, per_frame=cython.longlong,
                   wanted=cython.longlong)
    cdef void _measure_jitter(self, long long timestamp, long long arrival_ns) noexcept nogil
    @cython.locals(level=cython.longlong, ext=cython.longlong, slot=Py_ssize_t)
    cpdef int pop_into(self, short[::1] out) except -1
    @cython.locals(first=cython.longlong)
    cdef bint _start_playing(self) noexcept nogil
    cdef void _adapt(self, long long level) noexcept nogil
    @cython.locals(total=cython.longlong, done=cython.longlong, j=Py_ssize_t, v=cython.longlong)
    cdef int _conceal(self, short[::1] out) noexcept
