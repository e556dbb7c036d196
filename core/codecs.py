"""G.711 codecs and sample-format conversion: the compiled ``_g711`` unless
``PARLEY_NO_EXTENSIONS=1`` asks for the plain-Python twin ``_g711_py``.

Each conversion comes twice: allocating (``ulaw_encode``) and into a caller's buffer
(``ulaw_encode_into``), the form the per-frame loop uses.
"""

from parley.core._implementation import choose

_impl, COMPILED = choose("_g711", "_g711_py")

ulaw_encode = _impl.ulaw_encode
ulaw_decode = _impl.ulaw_decode
alaw_encode = _impl.alaw_encode
alaw_decode = _impl.alaw_decode
pcm16_to_float32 = _impl.pcm16_to_float32
float32_to_pcm16 = _impl.float32_to_pcm16
ulaw_encode_into = _impl.ulaw_encode_into
ulaw_decode_into = _impl.ulaw_decode_into
alaw_encode_into = _impl.alaw_encode_into
alaw_decode_into = _impl.alaw_decode_into
pcm16_to_float32_into = _impl.pcm16_to_float32_into
float32_to_pcm16_into = _impl.float32_to_pcm16_into
