# C types for the pure-Python barge-in detector in _bargein_py.py, compiled through the
# _bargein_c.py symlink. Keep the names in step with that module. The class is final so its
# cpdef method needs no Python override check.

cimport cython

cdef int BLOCK_MS
cdef double ENVELOPE_FLOOR, ENVELOPE_RATE, DELAY_MIN_CORRELATION, FAR_ACTIVE_ENERGY
cdef long long DELAY_MIN_BLOCKS
cdef long long GAIN_MEMORY_FRAMES, GAIN_PRIOR_FRAMES
cdef double GAIN_MIN, GAIN_MAX, FLOOR_RISE, ENERGY_MAX, PI
cdef Py_ssize_t N_BANDS, FILTER_STATE, NEAR, FAR


@cython.final
cdef class BargeInDetector:
    cdef readonly Py_ssize_t frame_samples
    cdef readonly Py_ssize_t block_samples
    cdef readonly Py_ssize_t blocks_per_frame
    cdef readonly long long min_samples
    cdef readonly long long bridge_samples
    cdef readonly Py_ssize_t n_lags
    cdef readonly double echo_margin
    cdef readonly double noise_margin
    cdef public bint agent_speaking
    cdef readonly double echo_gain
    cdef readonly long long echo_delay_samples
    cdef readonly bint delay_known
    cdef readonly double noise_floor
    cdef readonly long long position
    cdef readonly long long event_sample
    cdef readonly long long barge_in_sample
    cdef readonly long long frames_invalid
    cdef readonly long long frames_out_of_order
    cdef double _near_last
    cdef double _far_last
    cdef double[::1] _band_gain
    cdef double[::1] _band_floor
    cdef double[::1] _band_filter
    cdef double[::1] _filter_state
    cdef double[::1] _far_energy
    cdef double[::1] _far_envelope
    cdef double[::1] _correlation
    cdef double[::1] _near_energy
    cdef double[::1] _near_band
    cdef double[::1] _echo_band
    cdef double[::1] _echo_energy
    cdef double[::1] _reference_energy
    cdef long long _gain_frames
    cdef long long _blocks
    cdef long long _blocks_heard
    cdef Py_ssize_t _delay_blocks
    cdef double _near_mean
    cdef double _far_mean
    cdef double _near_variance
    cdef double _far_variance
    cdef long long _run_samples
    cdef long long _gap_samples
    cdef bint _declared

    @cython.locals(near=double, double_talk=bint, echo=double, predicted=double, k=Py_ssize_t)
    cpdef bint feed(self, const float[::1] near_frame, const float[::1] far_frame,
                    long long frame_start_sample) except -1
    @cython.locals(near_total=double, far_sum=double, x=double, y=double, difference=double, low=double,
                   telephone=double, near_low=double, near_mid=double, near_high=double, far_low=double,
                   far_mid=double, far_high=double, b=Py_ssize_t, i=Py_ssize_t, k=Py_ssize_t, slot=Py_ssize_t)
    cdef double _take_blocks(self, const float[::1] near_frame, const float[::1] far_frame) noexcept nogil
    @cython.locals(c=Py_ssize_t, s=Py_ssize_t, y=double)
    cdef inline double _lowpass(self, Py_ssize_t j, double x, Py_ssize_t signal) noexcept nogil
    @cython.locals(i=Py_ssize_t)
    cdef bint _filter_settled(self, Py_ssize_t signal) noexcept nogil
    @cython.locals(i=Py_ssize_t)
    cdef void _reset_filter(self, Py_ssize_t signal) noexcept nogil
    @cython.locals(loudest=double, d=Py_ssize_t)
    cdef double _loudest_recent_far(self, Py_ssize_t k) noexcept nogil
    @cython.locals(k=Py_ssize_t)
    cdef void _track_noise_floor(self, double near) noexcept nogil
    @cython.locals(first=cython.longlong, t=cython.longlong, b=Py_ssize_t, d=Py_ssize_t, best=Py_ssize_t,
                   near_envelope=double, far_envelope=double, near_deviation=double,
                   far_deviation=double, lagged=double, scale=double, rate=double)
    cdef void _learn_delay(self) noexcept nogil
    @cython.locals(low=Py_ssize_t, high=Py_ssize_t, first=cython.longlong, b=Py_ssize_t, d=Py_ssize_t,
                   loudest=double, energy=double, total=double, band=double, k=Py_ssize_t)
    cdef double _echo_energy_at_unit_gain(self) noexcept nogil
    @cython.locals(weight=double, excess=double, echo_total=double, reference_total=double, k=Py_ssize_t)
    cdef void _learn_gain(self) noexcept nogil


cdef double _tracked_floor(double floor, double energy) noexcept nogil
cdef double _clamped_gain(double gain) noexcept nogil
