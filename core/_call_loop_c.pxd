# C types for the pure-Python call loop in _call_loop_py.py, compiled through the _call_loop_c.py
# symlink. Keep the names in step with that module. The parts are cimported, so a frame calls
# them directly in C; the class is final so its own cdef methods need no override check.

cimport cython

cimport parley.core._bargein_c
cimport parley.core._endpointer_c
cimport parley.core._framing_c
cimport parley.core._jitter_c
cimport parley.core._playout_c
cimport parley.core._vad_c

cdef int _NO_EVENT, _SPEECH_START, _SHORT_SILENCE, _END_OF_TURN, _MAX_TURN_REACHED, _TRAILING_SILENCE
cdef int _PCMU, _PCMA, _L16
cdef int _NO_SOURCE, _RTP, _PCM


@cython.final
cdef class CallLoop:
    cdef dict __dict__
    cdef object __weakref__
    cdef readonly object settings
    cdef readonly Py_ssize_t frame_samples
    cdef readonly Py_ssize_t analysis_samples
    cdef readonly object call_key
    cdef readonly parley.core._vad_c.TwoStageVad vad
    cdef readonly parley.core._endpointer_c.Endpointer endpointer
    cdef readonly parley.core._bargein_c.BargeInDetector barge_in
    cdef readonly parley.core._playout_c.Playout playout
    cdef readonly long long position
    cdef readonly long long packets_malformed
    cdef object _face
    cdef object _acoustic
    cdef bint _acoustic_pending
    cdef int _codec
    cdef Py_ssize_t _payload_bytes
    cdef int _source
    cdef object _decode
    cdef object _encode
    cdef object _to_float
    cdef object _to_pcm16
    cdef parley.core._jitter_c.JitterBuffer _jitter
    cdef parley.core._framing_c.Framer _framer
    cdef object _upsampler
    cdef object _upsample
    cdef dict _voice_resamplers
    cdef const float[::1] _reference
    cdef object _packet_pcm_array
    cdef short[::1] _packet_pcm
    cdef object _in_pcm_array
    cdef short[::1] _in_pcm
    cdef object _in_array
    cdef float[::1] _in
    cdef object _analysis_array
    cdef float[::1] _analysis
    cdef object _out_array
    cdef float[::1] _out
    cdef object _out_pcm
    cdef bytearray _out_codes
    cdef object _turn_audio_array
    cdef float[::1] _turn_audio
    cdef long long _analysis_written
    cdef bint _speech
    cdef object _events

    cdef void _choose_source(self, int source) except *

    @cython.locals(start=cython.longlong, agent_audio=bint, barged=bint, event=int)
    cdef bint _tick(self) except -1

    @cython.locals(n=Py_ssize_t, size=Py_ssize_t, at=Py_ssize_t, first=Py_ssize_t)
    cdef int _analyse(self) except -1

    cdef void _barge_in(self) except *

    @cython.locals(ep=parley.core._endpointer_c.Endpointer)
    cdef void _endpoint_event(self, int event) except *

    cdef void _follow_acoustic_stage(self) except *

    cdef void _cancel_acoustic(self) except *
