# cython: language_level=3
"""C types for the stage-(a) VAD and TwoStageVad: ``_vad_c.py`` is a symlink to ``_vad_py.py``."""

cimport cython

cdef int _SILENCE, _SPEECH, _UNSURE
cdef int _FLOOR_SUBWINDOWS
cdef double _MIN_DB


@cython.locals(db=double)
cdef double _db(double power) noexcept nogil


cdef class NoiseFloorVad:
    cdef readonly int sample_rate
    cdef readonly int frame_ms
    cdef readonly int frame_size
    cdef readonly double speech_margin_db
    cdef readonly double silence_margin_db
    cdef readonly double noisy_silence_margin_db
    cdef readonly double clear_line_db
    cdef readonly double noisy_line_db
    cdef readonly double silence_dbfs
    cdef readonly double peak_decay_db
    cdef readonly double speech_below_peak_db
    cdef readonly double expected_peak_dbfs
    cdef readonly int hangover_frames
    cdef readonly int warmup_frames
    cdef readonly int subwindow_frames
    cdef readonly double score
    cdef readonly int decision
    cdef readonly bint holding
    cdef readonly double line_snr_db
    cdef readonly double noise_floor_db
    cdef readonly long long frames
    cdef double _hp_coef
    cdef double _split_coef
    cdef double _top_coef
    cdef double _x_prev
    cdef double _hp
    cdef double _lp1
    cdef double _lp2
    cdef double _top
    cdef int _hangover_left
    cdef int _subwindow_pos
    cdef int _subwindow_index
    cdef double _low_min
    cdef double _high_min
    cdef double[:, ::1] _history
    cdef double _low_peak
    cdef double _high_peak

    cpdef reset(self)

    @cython.locals(n=Py_ssize_t, i=Py_ssize_t, check=double, x=double, hp_coef=double, split=double,
                   top_coef=double, x_prev=double, hp=double, lp1=double, lp2=double, top=double,
                   broad=double, low=double, high=double, level_db=double, low_db=double,
                   high_db=double, low_floor=double, high_floor=double, margin=double,
                   middle=double, slope=double, score=double,
                   line_snr=double, clear=double, silence_margin=double, below_peak=double)
    cpdef int process(self, const float[::1] frame)

    cdef int _decide(self, int raw, double score) noexcept nogil

    cdef void _track_floor(self, double low_db, double high_db) noexcept nogil

    @cython.locals(lowest=double, k=int)
    cdef double _history_min(self, int band) noexcept nogil


cdef double FLOAT32_MAX


@cython.final
cdef class TwoStageVad:
    cdef readonly object settings
    cdef readonly NoiseFloorVad stage_a
    cdef readonly object silero
    cdef readonly object stream
    cdef readonly Py_ssize_t window_size
    cdef readonly bint speech
    cdef public double silero_prob
    cdef readonly long long frames
    cdef readonly long long frames_confirmed
    cdef readonly long long windows_scored
    cdef bint _always
    cdef long long _catch_up
    cdef double _silero_speech
    cdef double _silero_silence
    cdef float[:, ::1] _windows
    cdef list _rows
    cdef Py_ssize_t _slots
    cdef Py_ssize_t _filled
    cdef long long _completed
    cdef long long _scored
    cdef long long _first_pending

    @cython.locals(count=Py_ssize_t, k=Py_ssize_t)
    cpdef bint process_frame(self, const float[::1] frame) except -1

    @cython.locals(first=cython.longlong)
    cdef Py_ssize_t _prepare_frame(self, const float[::1] samples) except -1

    cdef bint _needs_silero(self) noexcept

    @cython.locals(threshold=double)
    cpdef bint _finish(self) noexcept

    @cython.locals(taken=Py_ssize_t, slot=Py_ssize_t, count=Py_ssize_t, i=Py_ssize_t, x=float)
    cdef void _buffer(self, const float[::1] samples) noexcept
