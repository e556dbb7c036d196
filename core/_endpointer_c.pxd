# C types for the pure-Python endpointer in _endpointer_py.py, compiled through the
# _endpointer_c.py symlink. Keep the names in step with that module. The class is final so its
# cpdef methods need no Python override check and can run without the GIL.

cimport cython

cdef int NO_EVENT, SPEECH_START, SHORT_SILENCE, END_OF_TURN, MAX_TURN_REACHED
cdef int IDLE, MAYBE_SPEECH, SPEECH, TRAILING_SILENCE


@cython.final
cdef class Endpointer:
    cdef readonly long long frame_samples
    cdef readonly long long min_speech_samples
    cdef readonly long long hangover_samples
    cdef readonly long long short_silence_samples
    cdef readonly long long max_turn_samples
    cdef readonly long long pre_roll_samples
    cdef readonly int state
    cdef readonly long long position
    cdef readonly long long event_sample
    cdef readonly long long speech_start_sample
    cdef readonly long long speech_end_sample
    cdef readonly long long stt_start_sample
    cdef readonly long long frames_out_of_order
    cdef long long _candidate_start
    cdef bint _short_silence_sent

    @cython.locals(frame_end=cython.longlong, silence=cython.longlong)
    cpdef int feed(self, bint is_speech, long long frame_start_sample) noexcept nogil
    @cython.locals(n_frames=Py_ssize_t, n_events=Py_ssize_t, i=Py_ssize_t, code=int)
    cpdef Py_ssize_t feed_frames(self, const unsigned char[::1] is_speech, long long first_frame_sample,
                                 int[::1] event_codes, long long[::1] event_samples) except -1
    cpdef int end_turn_now(self, long long scored_until_sample) noexcept nogil
    cdef int _confirm_speech(self, long long frame_end) noexcept nogil
    cdef int _end_turn(self, int event, long long sample) noexcept nogil
