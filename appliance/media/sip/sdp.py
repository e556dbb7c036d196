"""SDP offer/answer (RFC 3264 over RFC 4566) for one G.711 audio stream, sans-I/O.

Parley answers what phones and PBXes offer: plain RTP/AVP audio in PCMU or PCMA, with RFC 4733
telephone-events for DTMF. The parser is strict about the lines the answer depends on (``v=``,
``c=``, ``m=``, ``a=rtpmap``, ``a=ptime``) and ignores every other line, so an odd ``b=`` or a
missing ``t=`` from a real phone never costs a call.

Hold: ``a=sendonly``/``a=inactive`` (RFC 3264) and the legacy ``c=0.0.0.0`` (RFC 2543) are both
understood. ``c=0.0.0.0`` means the remote will not receive, so its direction loses "recv"
(sendrecv -> sendonly, recvonly -> inactive); ``MediaOffer.address`` stays ``0.0.0.0`` and
nothing must be sent there.
"""

import re
from dataclasses import dataclass

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
OPPOSITE_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}
"""Our direction in the answer for the remote's direction in the offer (RFC 3264 section 6.1)."""
STATIC_PAYLOAD_TYPES = {0: ("PCMU", 8000), 3: ("GSM", 8000), 4: ("G723", 8000), 8: ("PCMA", 8000),
                        9: ("G722", 8000), 13: ("CN", 8000), 18: ("G729", 8000)}
"""RFC 3551 audio payload types a phone may list without an ``a=rtpmap``."""
G711_PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}
"""The codecs Parley can carry, with the payload types it offers them under."""
TELEPHONE_EVENT = "telephone-event"
DTMF_EVENT_RANGE = "0-16"
"""The RFC 4733 events we accept: the 16 DTMF digits and flash."""
SRTP_PROFILES = ("RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF")
HOLD_ADDRESS = "0.0.0.0"
CANONICAL_NAMES = {name.lower(): name for name in ("PCMU", "PCMA", "G722", "G729", "GSM", "CN", TELEPHONE_EVENT)}
LINE = re.compile(r"([a-z])=(.*)")
ADDRESS = re.compile(r"[0-9A-Za-z.:%_-]+")


class SdpError(ValueError):
    """A session description that cannot be read; the message says which line and why."""


class SdpNegotiationError(SdpError):
    """A well-formed offer with nothing Parley can accept (no plain RTP audio, no common codec):
    the caller answers 488 Not Acceptable Here."""


@dataclass(frozen=True)
class Codec:
    name: str
    """The encoding name as RFC 3551 spells it: ``PCMU``, ``PCMA``, ``telephone-event`` (others as offered)."""
    payload_type: int
    rate: int
    """The RTP clock rate in Hz."""


@dataclass(frozen=True)
class MediaOffer:
    """What the remote's session description says about its audio stream."""

    address: str
    """Where to send RTP (``0.0.0.0`` for a legacy hold; an IPv6 address is kept as written)."""
    port: int
    codecs: tuple[Codec, ...]
    """Every format of the stream we could name, in the remote's order of preference."""
    dtmf_payload_type: int | None
    """The payload type of ``telephone-event/8000``, or None when DTMF is not offered in-band."""
    ptime: int | None
    """Milliseconds of audio per packet the remote wants to receive, if it said."""
    direction: str
    """The remote's direction: sendrecv, sendonly, recvonly or inactive."""
    streams: tuple[str, ...] = ()
    """Every ``m=`` line of the offer, in order, so an answer can reject the streams we do not take."""
    stream_index: int = 0
    """Which of ``streams`` is this audio stream."""


@dataclass(frozen=True)
class Answer:
    """Our answer to an offer, and what the media path needs from it."""

    sdp: bytes
    codec: Codec
    """The codec both sides will send, under the offer's payload type."""
    dtmf_payload_type: int | None
    remote: tuple[str, int]
    """Where RTP goes."""
    direction: str
    """Our direction, as the answer states it."""


def parse_offer(data: bytes) -> MediaOffer:
    """The first usable audio stream of a session description (an offer, or the answer to ours).

    Raises SdpError for text that is not SDP and SdpNegotiationError for SDP with no plain-RTP
    audio stream (none at all, only SRTP, or port 0).
    """
    lines = _lines(data)
    session, sections = _sections(lines)
    audio = [i for i, section in enumerate(sections) if section.media == "audio"]
    if not audio:
        raise SdpNegotiationError("the session description has no m=audio stream")
    refusals = []
    for index in audio:
        refusal = sections[index].refusal()
        if refusal is None:
            return _media_offer(session, sections, index)
        refusals.append(refusal)
    raise SdpNegotiationError(refusals[0])


def answer(offer: bytes | MediaOffer, *, address: str, port: int, session_id: int, session_version: int,
           supported=("PCMU", "PCMA"), ptime=20) -> Answer:
    """Our answer to ``offer``: the first codec of the offer's list that we support, the offer's
    telephone-event payload type echoed if it has one, and the opposite direction.

    Raises SdpNegotiationError when no offered codec is supported (the caller answers 488).
    """
    if not isinstance(offer, MediaOffer):
        offer = parse_offer(offer)
    wanted = {_g711_name(name) for name in supported}
    chosen = next((c for c in offer.codecs if c.name in wanted and c.rate == 8000), None)
    if chosen is None:
        offered = ", ".join(f"{c.name}/{c.rate}" for c in offer.codecs) or "nothing we can name"
        raise SdpNegotiationError(f"no common codec: the offer has {offered}; Parley supports {', '.join(supported)}")
    direction = OPPOSITE_DIRECTION[offer.direction]
    audio = _audio_lines(port, [(chosen.payload_type, chosen.name)], offer.dtmf_payload_type, ptime, direction)
    media = [audio]
    if offer.streams:
        media = [audio if i == offer.stream_index else [f"m={_rejected(stream)}"]
                 for i, stream in enumerate(offer.streams)]
    sdp = _session(address, session_id, session_version, media)
    return Answer(sdp=sdp, codec=chosen, dtmf_payload_type=offer.dtmf_payload_type,
                  remote=(offer.address, offer.port), direction=direction)


def offer(*, address: str, port: int, session_id: int, session_version: int, codecs=("PCMU", "PCMA"),
          dtmf_payload_type=101, direction="sendrecv", ptime=20) -> bytes:
    """A session description offering ``codecs`` (in that order of preference); a re-INVITE that
    puts the remote on hold offers ``direction="sendonly"``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if dtmf_payload_type is not None and not 96 <= dtmf_payload_type <= 127:
        raise ValueError(f"dtmf_payload_type must be a dynamic payload type (96-127), not {dtmf_payload_type}")
    formats = [(G711_PAYLOAD_TYPES[_g711_name(name)], _g711_name(name)) for name in codecs]
    if not formats:
        raise ValueError("an offer needs at least one codec")
    return _session(address, session_id, session_version,
                    [_audio_lines(port, formats, dtmf_payload_type, ptime, direction)])


def _g711_name(name):
    canonical = str(name).upper()
    if canonical not in G711_PAYLOAD_TYPES:
        raise ValueError(f"Parley carries only {' and '.join(G711_PAYLOAD_TYPES)}, not {name!r}")
    return canonical


def _audio_lines(port, formats, dtmf_payload_type, ptime, direction):
    payload_types = [str(pt) for pt, _ in formats]
    if dtmf_payload_type is not None:
        payload_types.append(str(dtmf_payload_type))
    lines = [f"m=audio {port} RTP/AVP {' '.join(payload_types)}"]
    lines += [f"a=rtpmap:{pt} {name}/8000" for pt, name in formats]
    if dtmf_payload_type is not None:
        lines += [f"a=rtpmap:{dtmf_payload_type} {TELEPHONE_EVENT}/8000",
                  f"a=fmtp:{dtmf_payload_type} {DTMF_EVENT_RANGE}"]
    if ptime:
        lines.append(f"a=ptime:{ptime}")
    lines.append(f"a={direction}")
    return lines


def _rejected(stream):
    """An offered ``m=`` line answered with port 0 (RFC 3264 section 6): same media, proto, formats."""
    media, _, rest = stream.split(" ", 2)
    return f"{media} 0 {rest}"


def _session(address, session_id, session_version, media):
    if not ADDRESS.fullmatch(address or ""):
        raise ValueError(f"address must be an IP address or host name, not {address!r}")
    family = "IP6" if ":" in address else "IP4"
    lines = ["v=0", f"o=parley {session_id} {session_version} IN {family} {address}", "s=parley",
             f"c=IN {family} {address}", "t=0 0"]
    for section in media:
        lines += section
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _lines(data):
    """(type, value) per line; CRLF or bare LF, blank lines skipped."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SdpError(f"a session description is bytes, not {type(data).__name__}")
    text = bytes(data).decode("utf-8", errors="replace")
    lines = []
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.rstrip("\r")
        if not raw.strip():
            continue
        match = LINE.fullmatch(raw)
        if match is None:
            raise SdpError(f"line {number} is not <type>=<value>: {raw[:60]!r}")
        lines.append((match[1], match[2].strip()))
    if not lines or lines[0] != ("v", "0"):
        raise SdpError("a session description starts with v=0")
    return lines


class _Section:
    """The lines of the session level or of one media description."""

    def __init__(self, media_line=None):
        self.media_line = media_line
        self.connection = None
        self.attributes = []
        self.media = self.port = self.proto = None
        self.formats = []
        if media_line is not None:
            self._parse_media_line(media_line)

    def _parse_media_line(self, value):
        fields = value.split()
        if len(fields) < 4:
            raise SdpError(f"m= needs <media> <port> <proto> <format>...: {value!r}")
        self.media_line = " ".join(fields)
        self.media, port, self.proto, self.formats = fields[0], fields[1], fields[2], fields[3:]
        self.port = _number(port.split("/", 1)[0], 65535)
        if self.port is None:
            raise SdpError(f"m= has a bad port: {value!r}")

    def refusal(self):
        """Why we cannot take this audio stream, or None."""
        if self.proto in SRTP_PROFILES:
            return f"the audio stream is SRTP ({self.proto}); Parley speaks plain RTP/AVP"
        if self.proto != "RTP/AVP":
            return f"the audio stream uses {self.proto}; Parley speaks RTP/AVP"
        if self.port == 0:
            return "the audio stream is rejected (port 0)"
        return None

    def attribute(self, name):
        return next((value for key, value in self.attributes if key == name), None)

    def direction(self):
        return next((key for key, _ in self.attributes if key in DIRECTIONS), None)


def _sections(lines):
    session, sections = _Section(), []
    current = session
    for kind, value in lines:
        if kind == "m":
            current = _Section(value)
            sections.append(current)
        elif kind == "c":
            current.connection = _connection_address(value)
        elif kind == "a":
            key, _, attribute_value = value.partition(":")
            current.attributes.append((key.strip(), attribute_value.strip()))
    return session, sections


def _connection_address(value):
    fields = value.split()
    if len(fields) != 3 or fields[0] != "IN" or fields[1] not in ("IP4", "IP6"):
        raise SdpError(f"c= needs IN IP4|IP6 <address>: {value!r}")
    address = fields[2].split("/", 1)[0]
    if not ADDRESS.fullmatch(address):
        raise SdpError(f"c= has a bad address: {value!r}")
    return address


def _media_offer(session, sections, index):
    section = sections[index]
    address = section.connection or session.connection
    if address is None:
        raise SdpError("the audio stream has no c= connection address (neither session nor media level)")
    rtpmaps = {}
    for key, value in section.attributes:
        if key == "rtpmap":
            payload_type, codec = _rtpmap(value)
            rtpmaps.setdefault(payload_type, codec)
    codecs = []
    for text in section.formats:
        payload_type = _number(text, 127)
        if payload_type is None:
            raise SdpError(f"m=audio lists a payload type that is not 0-127: {text!r}")
        named = rtpmaps.get(payload_type) or STATIC_PAYLOAD_TYPES.get(payload_type)
        if named is not None:
            codecs.append(Codec(name=named[0], payload_type=payload_type, rate=named[1]))
    dtmf = next((c.payload_type for c in codecs if c.name == TELEPHONE_EVENT and c.rate == 8000), None)
    ptime = section.attribute("ptime") or session.attribute("ptime")
    direction = section.direction() or session.direction() or "sendrecv"
    if address == HOLD_ADDRESS:
        direction = {"sendrecv": "sendonly", "recvonly": "inactive"}.get(direction, direction)
    return MediaOffer(address=address, port=section.port, codecs=tuple(codecs), dtmf_payload_type=dtmf,
                      ptime=_ptime(ptime) if ptime else None, direction=direction,
                      streams=tuple(s.media_line for s in sections), stream_index=index)


def _rtpmap(value):
    """``<pt> <name>/<rate>[/<channels>]`` -> (pt, (name, rate))."""
    match = re.fullmatch(r"([0-9]{1,3})\s+([^/\s]+)/([0-9]{1,9})(?:/[0-9]+)?", value)
    if match is None or int(match[1]) > 127:
        raise SdpError(f"a=rtpmap needs <payload type> <name>/<rate>: {value!r}")
    name = CANONICAL_NAMES.get(match[2].lower(), match[2])
    return int(match[1]), (name, int(match[3]))


def _number(text, largest):
    """``text`` as a decimal integer from 0 to ``largest``, or None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > largest:
        return None
    return int(text)


def _ptime(value):
    try:
        ptime = float(value)
    except ValueError:
        ptime = 0
    if not 0 < ptime < 1000:
        raise SdpError(f"a=ptime needs milliseconds: {value!r}")
    return round(ptime)
