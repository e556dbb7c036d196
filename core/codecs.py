"""G.711 codecs and sample-format conversion: the compiled ``_g711`` unless
``PARLEY_NO_EXTENSIONS=1`` asks for the plain-Python twin ``_g711_py``."""

import os

if os.environ.get("PARLEY_NO_EXTENSIONS") == "1":
    from parley.core import _g711_py as _impl

    COMPILED = False
else:
    from parley.core import _g711 as _impl

    COMPILED = True

ulaw_encode = _impl.ulaw_encode
ulaw_decode = _impl.ulaw_decode
alaw_encode = _impl.alaw_encode
alaw_decode = _impl.alaw_decode
pcm16_to_float32 = _impl.pcm16_to_float32
float32_to_pcm16 = _impl.float32_to_pcm16
