"""SIP messages (RFC 3261 sections 7, 19, 20, 25), sans-I/O: bytes in, ``Request``/``Response`` out,
and back to bytes.

Strict where a wrong reading would misroute or mismatch a message: the start line, Via, From, To,
Call-ID, CSeq, Max-Forwards and Content-Length are checked, and anything wrong is a
``SipParseError`` whose ``.status`` is the response to send (400, or 505 for another SIP version,
413 for an oversized stream message). Tolerant of what real phones and PBXes send: folded lines,
compact and oddly cased header names, whitespace around separators, LF-only line ends, keep-alive
CRLFs, a missing Max-Forwards, a datagram without Content-Length. Unknown headers are kept as
text and never judged.

Header values stay as text (unfolded, trimmed) so a message forwards unchanged; ``SipUri``,
``NameAddr``, ``Via`` and ``parse_cseq`` read the structured ones on demand. Content-Length is
framing, not content: ``parse`` sets it to the body it kept, ``to_bytes`` writes it from the body,
and message equality ignores it.
"""

import ipaddress
import re
from dataclasses import dataclass, field, replace

MAX_UDP_MESSAGE = 65507
"""The largest UDP payload over IPv4: the receive buffer size for datagrams."""
MAX_STREAM_MESSAGE = 65536
"""The largest message ``StreamFramer`` accepts before answering 413."""
MAX_CSEQ = 2**31 - 1
"""RFC 3261 section 8.1.1.5: the CSeq number is below 2**31."""
MAX_FORWARDS_LIMIT = 255

COMPACT_NAMES = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
    "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "r": "Refer-To", "b": "Referred-By",
    "o": "Event", "x": "Session-Expires", "u": "Allow-Events", "a": "Accept-Contact", "j": "Reject-Contact",
    "d": "Request-Disposition",
}
"""RFC 3261 section 7.3.3 and later RFCs: single-letter header names and the names they stand for."""
CANONICAL_NAMES = {name.lower(): name for name in (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition",
    "Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Diversion",
    "Error-Info", "Event", "Expires", "From", "History-Info", "In-Reply-To", "Max-Forwards", "MIME-Version",
    "Min-Expires", "Min-SE", "Organization", "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority",
    "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route",
    "Refer-To", "Referred-By", "Reject-Contact", "Replaces", "Reply-To", "Request-Disposition", "Require",
    "Retry-After", "Route", "RSeq", "Security-Client", "Security-Server", "Security-Verify", "Server",
    "Service-Route", "Session-Expires", "SIP-ETag", "SIP-If-Match", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
)}
"""How each known header name is spelled on the wire, by its lower-case form."""
LIST_HEADERS = frozenset(name.lower() for name in (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Call-Info", "Contact", "Content-Encoding", "Content-Language", "Diversion", "Error-Info", "History-Info",
    "In-Reply-To", "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Proxy-Require", "Reason",
    "Record-Route", "Reject-Contact", "Require", "Route", "Security-Client", "Security-Server",
    "Security-Verify", "Service-Route", "Supported", "Unsupported", "Via", "Warning",
))
"""Headers whose value is a comma-separated list (RFC 3261 section 7.3.1): ``get_all`` splits them."""
SINGLE_HEADERS = ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length")
REQUIRED_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
    199: "Early Dialog Terminated", 200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
    380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone", 412: "Conditional Request Failed",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief", 429: "Provide Referrer Identity",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
    483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    493: "Undecipherable", 494: "Security Agreement Required", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 580: "Precondition Failure", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable", 607: "Unwanted",
}
"""The reason phrase ``make_response`` uses when none is given (RFC 3261 section 21 and extensions)."""
CLASS_REASONS = {1: "Provisional", 2: "Success", 3: "Redirection", 4: "Client Error", 5: "Server Error",
                 6: "Global Failure"}

TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
QUOTED = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\r\n])*"'
PARAM_VALUE = rf"[A-Za-z0-9\-.!%*_+`'~:]+|\[[0-9A-Fa-f:.]+\]|{QUOTED}"
"""A generic-param value: token, host (an unbracketed IPv6 ``received`` too, RFC 5118) or quoted-string."""
TOKEN_RE = re.compile(TOKEN)
DISPLAY_TOKENS_RE = re.compile(rf"{TOKEN}(?:[ \t]+{TOKEN})*")
GENERIC_PARAM_RE = re.compile(rf"[ \t]*({TOKEN})[ \t]*(?:=[ \t]*({PARAM_VALUE})[ \t]*)?")
CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
VERSION_RE = re.compile(r"SIP/([0-9]{1,3})\.([0-9]{1,3})", re.IGNORECASE)
STATUS_RE = re.compile(r"[1-6][0-9]{2}")
SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.+)", re.DOTALL)
ABSOLUTE_URI_RE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
PASSWORD_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
URI_PARAM_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+")
URI_HEADER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*\.?")
TEL_NUMBER_RE = re.compile(r"\+?[0-9A-Fa-f*#.()\-]+")
SENT_BY_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?")
VIA_RE = re.compile(rf"[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]+(.*)", re.DOTALL)
CSEQ_RE = re.compile(rf"[ \t]*([0-9]+)[ \t]+({TOKEN})[ \t]*")
CALL_ID_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?")
DIGITS_RE = re.compile(r"[0-9]{1,10}")


class SipParseError(ValueError):
    """Bytes or text that are not a usable SIP message; ``status`` is the response a UAS sends back."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _show(text, limit=80):
    """``text`` quoted for an error message, cut short so a 60 KB header cannot flood the log."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def canonical_name(name):
    """The wire spelling of a header name: compact forms expanded, known names in their usual case,
    unknown names as given."""
    lower = name.lower()
    if lower in COMPACT_NAMES:
        return COMPACT_NAMES[lower]
    return CANONICAL_NAMES.get(lower, name)


def _split_outside(text, separator):
    """``text`` split at ``separator`` where it is neither inside a quoted string nor inside <...>."""
    pieces, current = [], []
    in_quote = escaped = False
    depth = 0
    for ch in text:
        if escaped:
            escaped = False
        elif in_quote:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif ch == separator and not depth:
            pieces.append("".join(current))
            current = []
            continue
        current.append(ch)
    pieces.append("".join(current))
    return pieces


def _bare_control(value):
    """Whether ``value`` holds a control character other than HTAB that is not a quoted-pair inside
    a quoted string (RFC 3261 allows ``"\\<NUL>"``, never a raw one, and never CR or LF)."""
    if not CONTROL_RE.search(value):
        return False
    in_quote = escaped = False
    for ch in value:
        if escaped:
            if ch in "\r\n":
                return True
            escaped = False
        elif in_quote and ch == "\\":
            escaped = True
        elif ch == '"':
            in_quote = not in_quote
        elif CONTROL_RE.match(ch):
            return True
    return False


def _read_quoted(text, start):
    """The unescaped content of the quoted string opening at ``text[start]``, and the index after it."""
    out = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text) and text[i + 1] not in "\r\n":
            out.append(text[i + 1])
            i += 2
            continue
        if ch != "\t" and CONTROL_RE.match(ch):
            raise SipParseError(f"control character {ch!r} in quoted string {_show(text)}")
        out.append(ch)
        i += 1
    raise SipParseError(f"unterminated quoted string in {_show(text)}")


def _quote(text):
    """``text`` as a quoted-string, escaping what must be escaped."""
    if "\r" in text or "\n" in text:
        raise ValueError(f"a quoted string cannot hold CR or LF: {_show(text)}")
    escaped = "".join("\\" + ch if ch in '"\\' or (ch != "\t" and CONTROL_RE.match(ch)) else ch for ch in text)
    return f'"{escaped}"'


def _generic_params(text, what):
    """``;name=value`` parameters (RFC 3261 generic-param) as an ordered dict: names lower-cased,
    values as written (quoted strings keep their quotes), None for a parameter without a value."""
    params = {}
    text = text.strip(" \t")
    if not text:
        return params
    if not text.startswith(";"):
        raise SipParseError(f"{what}: expected ';' before parameters, got {_show(text)}")
    for piece in _split_outside(text[1:], ";"):
        match = GENERIC_PARAM_RE.fullmatch(piece)
        if not match:
            raise SipParseError(f"{what}: bad parameter {_show(piece)}")
        name = match[1].lower()
        if name in params:
            raise SipParseError(f"{what}: parameter {name!r} given twice")
        params[name] = match[2]
    return params


def _format_params(params):
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params.items())


def _host(text, what):
    """A hostname, IPv4 address or bracketed IPv6 reference; IPv6 comes back without brackets."""
    if text.startswith("[") and text.endswith("]"):
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise SipParseError(f"{what}: bad IPv6 address {_show(text)}") from None
        return text[1:-1]
    if not HOSTNAME_RE.fullmatch(text):
        raise SipParseError(f"{what}: bad host {_show(text)}")
    return text


def _format_host(host):
    return f"[{host}]" if ":" in host else host


def _port(text, what):
    if not DIGITS_RE.fullmatch(text) or int(text) > 65535:
        raise SipParseError(f"{what}: bad port {_show(text)}")
    return int(text)


@dataclass(frozen=True)
class SipUri:
    """A sip:, sips: or tel: URI (RFC 3261 section 19.1, RFC 3966). User, password and parameter
    values stay %-escaped as written, so ``str()`` gives back what was parsed."""

    scheme: str
    """``sip``, ``sips`` or ``tel``, lower-cased."""
    user: str | None
    """The user part; for tel: the telephone number."""
    password: str | None
    host: str
    """Hostname or address, IPv6 without brackets; empty for tel:."""
    port: int | None = None
    params: dict = field(default_factory=dict)
    """URI parameters, names lower-cased, None for a parameter without a value (``lr``)."""
    headers: dict = field(default_factory=dict)
    """The ``?name=value&...`` part."""

    @classmethod
    def parse(cls, text):
        if not isinstance(text, str) or not text:
            raise SipParseError(f"no URI to parse: {text!r}")
        match = SCHEME_RE.fullmatch(text)
        if not match:
            raise SipParseError(f"not a URI: {_show(text)}")
        scheme, rest = match[1].lower(), match[2]
        if scheme == "tel":
            return cls._parse_tel(rest, text)
        if scheme not in ("sip", "sips"):
            raise SipParseError(f"unsupported URI scheme {scheme!r} in {_show(text)}")
        user = password = None
        if "@" in rest:
            userinfo, _, rest = rest.partition("@")
            user, colon, secret = userinfo.partition(":")
            password = secret if colon else None
            if not USER_RE.fullmatch(user):
                raise SipParseError(f"bad user part {_show(user)} in URI {_show(text)}")
            if password is not None and not PASSWORD_RE.fullmatch(password):
                raise SipParseError(f"bad password in URI {_show(text)}")
        rest, question, header_text = rest.partition("?")
        hostport, *param_texts = rest.split(";")
        if hostport.startswith("["):
            end = hostport.find("]") + 1
            host_text, port_text = hostport[:end], hostport[end:]
            if not end or (port_text and not port_text.startswith(":")):
                raise SipParseError(f"bad host in URI {_show(text)}")
            port_text = port_text[1:] if port_text else None
        else:
            host_text, colon, port_text = hostport.partition(":")
            port_text = port_text if colon else None
        host = _host(host_text, f"URI {_show(text)}")
        port = None if port_text is None else _port(port_text, f"URI {_show(text)}")
        params = cls._parse_params(param_texts, text)
        headers = {}
        if question:
            for pair in header_text.split("&"):
                name, equals, value = pair.partition("=")
                if not equals or not URI_HEADER_RE.fullmatch(name) or not name or not URI_HEADER_RE.fullmatch(value):
                    raise SipParseError(f"bad URI header {_show(pair)} in {_show(text)}")
                headers[name] = value
        return cls(scheme, user, password, host, port, params, headers)

    @classmethod
    def _parse_tel(cls, rest, text):
        number, *param_texts = rest.split(";")
        if not TEL_NUMBER_RE.fullmatch(number):
            raise SipParseError(f"bad telephone number in {_show(text)}")
        return cls("tel", number, None, "", None, cls._parse_params(param_texts, text), {})

    @staticmethod
    def _parse_params(param_texts, text):
        params = {}
        for piece in param_texts:
            name, equals, value = piece.partition("=")
            if not URI_PARAM_RE.fullmatch(name) or (equals and not URI_PARAM_RE.fullmatch(value)):
                raise SipParseError(f"bad URI parameter {_show(piece)} in {_show(text)}")
            name = name.lower()
            if name in params:
                raise SipParseError(f"URI parameter {name!r} given twice in {_show(text)}")
            params[name] = value if equals else None
        return params

    def __str__(self):
        if self.scheme == "tel":
            text = f"tel:{self.user}"
        else:
            userinfo = ""
            if self.user is not None:
                userinfo = self.user + ("" if self.password is None else f":{self.password}") + "@"
            port = "" if self.port is None else f":{self.port}"
            text = f"{self.scheme}:{userinfo}{_format_host(self.host)}{port}"
        text += "".join(f";{name}" if value is None else f";{name}={value}" for name, value in self.params.items())
        if self.headers:
            text += "?" + "&".join(f"{name}={value}" for name, value in self.headers.items())
        return text


@dataclass(frozen=True)
class NameAddr:
    """A From, To, Contact, Route or Refer-To value: optional display name, URI, header parameters."""

    display: str | None
    """The display name, unquoted and unescaped; None when there is none."""
    uri: SipUri
    params: dict = field(default_factory=dict)
    """Header parameters (``tag``, ``expires``, ``q``...), names lower-cased, values as written."""

    @classmethod
    def parse(cls, text):
        """Both forms: ``"Bob" <sip:bob@h>;tag=1`` and the bare ``sip:bob@h;tag=1``, where a
        ';' ends the URI and a URI holding ',' or '?' is an error (RFC 3261 section 20.10)."""
        if not isinstance(text, str):
            raise SipParseError(f"no address to parse: {text!r}")
        stripped = text.strip(" \t")
        if not stripped:
            raise SipParseError("empty address")
        if stripped.startswith('"'):
            display, end = _read_quoted(stripped, 0)
            uri_text, param_text = cls._angle_brackets(stripped[end:].lstrip(" \t"), text)
        elif "<" in stripped:
            opening = stripped.index("<")
            display = stripped[:opening].strip(" \t") or None
            if display is not None and not DISPLAY_TOKENS_RE.fullmatch(display):
                raise SipParseError(f"display name must be tokens or a quoted string: {_show(text)}")
            uri_text, param_text = cls._angle_brackets(stripped[opening:], text)
        else:
            display = None
            uri_text, semicolon, rest = stripped.partition(";")
            uri_text = uri_text.rstrip(" \t")
            if "," in uri_text or "?" in uri_text:
                raise SipParseError(f"a URI with ',' or '?' must be enclosed in <>: {_show(text)}")
            param_text = semicolon + rest
        return cls(display, SipUri.parse(uri_text), _generic_params(param_text, f"address {_show(text)}"))

    @staticmethod
    def _angle_brackets(text, whole):
        if not text.startswith("<"):
            raise SipParseError(f"expected <URI> after the display name: {_show(whole)}")
        closing = text.find(">")
        if closing < 0:
            raise SipParseError(f"unterminated <URI>: {_show(whole)}")
        return text[1:closing], text[closing + 1:]

    @property
    def tag(self):
        return self.params.get("tag")

    def with_tag(self, tag):
        return replace(self, params={**self.params, "tag": tag})

    def __str__(self):
        display = "" if self.display is None else _quote(self.display) + " "
        return f"{display}<{self.uri}>{_format_params(self.params)}"


@dataclass(frozen=True)
class Via:
    """One Via hop (RFC 3261 section 20.42): where the sender wants responses, and the branch that
    names its transaction."""

    transport: str
    """``UDP``, ``TCP``, ``TLS``, ``WS``..., upper-cased."""
    host: str
    """The sent-by host, IPv6 without brackets."""
    port: int | None = None
    params: dict = field(default_factory=dict)
    """``branch``, ``received``, ``rport``, ``maddr``..., names lower-cased, None when valueless."""

    @classmethod
    def parse(cls, text):
        if not isinstance(text, str):
            raise SipParseError(f"no Via to parse: {text!r}")
        match = VIA_RE.fullmatch(text)
        if not match:
            raise SipParseError(f"Via is not 'SIP/2.0/TRANSPORT host': {_show(text)}")
        protocol, version, transport, rest = match.groups()
        if protocol.upper() != "SIP" or version != "2.0":
            raise SipParseError(f"Via names {protocol}/{version}, not SIP/2.0: {_show(text)}")
        sent_by, semicolon, param_text = rest.partition(";")
        sent_by_match = SENT_BY_RE.fullmatch(sent_by.strip(" \t"))
        if not sent_by_match:
            raise SipParseError(f"bad sent-by in Via {_show(text)}")
        host = _host(sent_by_match[1], f"Via {_show(text)}")
        port = None if sent_by_match[2] is None else _port(sent_by_match[2], f"Via {_show(text)}")
        params = _generic_params(semicolon + param_text, f"Via {_show(text)}")
        return cls(transport.upper(), host, port, params)

    @property
    def branch(self):
        return self.params.get("branch")

    @property
    def received(self):
        return self.params.get("received")

    @property
    def rport(self):
        """The ``rport`` port a server filled in (RFC 3581), or None."""
        value = self.params.get("rport")
        return int(value) if value and DIGITS_RE.fullmatch(value) else None

    def with_received(self, host, port):
        """This Via as a server stamps it on receipt from ``(host, port)`` (RFC 3261 section 18.2.1,
        RFC 3581): ``received`` when the source differs from sent-by or rport was asked for, and the
        source port in an empty ``rport``."""
        params = dict(self.params)
        asked_rport = "rport" in params and params["rport"] is None
        if host != self.host or asked_rport:
            params["received"] = host
        if asked_rport:
            params["rport"] = str(port)
        return replace(self, params=params)

    def response_address(self):
        """Where a response to this hop goes (RFC 3261 section 18.2.2, RFC 3581 section 4):
        ``maddr``, else ``received``, else sent-by; the rport, else the sent-by port, else the
        transport's default."""
        default_port = 5061 if self.transport in ("TLS", "WSS") else 5060
        if self.params.get("maddr"):
            return self.params["maddr"], self.port or default_port
        return self.received or self.host, self.rport or self.port or default_port

    def __str__(self):
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {_format_host(self.host)}{port}{_format_params(self.params)}"


def parse_cseq(value):
    """A CSeq value as ``(number, method)``."""
    if not isinstance(value, str):
        raise SipParseError("missing CSeq")
    match = CSEQ_RE.fullmatch(value)
    if not match:
        raise SipParseError(f"CSeq is not 'number METHOD': {_show(value)}")
    if len(match[1]) > 10 or int(match[1]) > MAX_CSEQ:
        raise SipParseError(f"CSeq number must be below 2**31: {_show(value)}")
    return int(match[1]), match[2]


class Headers:
    """An ordered multi-map of header fields with case-insensitive names. Compact and differently
    cased names are stored under their canonical spelling; values are text without CR or LF."""

    def __init__(self, items=()):
        self._fields = []
        for name, value in items:
            self.add(name, value)

    @staticmethod
    def _checked(name, value):
        if not isinstance(name, str) or not TOKEN_RE.fullmatch(name):
            raise ValueError(f"header name must be a token: {name!r}")
        value = value if isinstance(value, str) else str(value)
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} value must not contain CR or LF: {_show(value)}")
        return canonical_name(name), value

    def get(self, name, default=None):
        """The first value; for a list header (Via, Contact...) the first element of the list."""
        values = self.get_all(name)
        return values[0] if values else default

    def get_all(self, name):
        """Every value, in order; for list headers each comma-separated element on its own."""
        key = canonical_name(name).lower()
        values = [value for name_, value in self._fields if name_.lower() == key]
        if key not in LIST_HEADERS:
            return values
        return [element.strip(" \t") for value in values for element in _split_outside(value, ",")
                if element.strip(" \t")]

    def add(self, name, value):
        """Append a field; ``value`` may be a ``Via``, ``NameAddr`` or ``SipUri`` (written with str)."""
        self._fields.append(self._checked(name, value))

    def set(self, name, value):
        """Replace every field of ``name`` with one, where the first one was (else at the end)."""
        name, value = self._checked(name, value)
        key = name.lower()
        positions = [i for i, (name_, _) in enumerate(self._fields) if name_.lower() == key]
        if not positions:
            self._fields.append((name, value))
            return
        self._fields[positions[0]] = (name, value)
        for i in reversed(positions[1:]):
            del self._fields[i]

    def remove(self, name):
        key = canonical_name(name).lower()
        self._fields = [(name_, value) for name_, value in self._fields if name_.lower() != key]

    def __contains__(self, name):
        key = canonical_name(name).lower()
        return any(name_.lower() == key for name_, _ in self._fields)

    def items(self):
        return list(self._fields)

    def copy(self):
        return Headers(self._fields)

    def __len__(self):
        return len(self._fields)

    def __eq__(self, other):
        if not isinstance(other, Headers):
            return NotImplemented
        return self._fields == other._fields

    def __repr__(self):
        return f"Headers({self._fields!r})"


def _content_fields(headers):
    return [(name, value) for name, value in headers.items() if name != "Content-Length"]


def _serialize(start_line, headers, body):
    """The wire form: CRLF line ends, no folding, exactly one Content-Length from ``body``."""
    lines = [start_line]
    wrote_length = False
    for name, value in headers.items():
        if name == "Content-Length":
            if wrote_length:
                continue
            value, wrote_length = str(len(body)), True
        lines.append(f"{name}: {value}")
    if not wrote_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + bytes(body)


@dataclass(eq=False)
class Request:
    method: str
    uri: str
    """The Request-URI as written; ``SipUri.parse`` reads it."""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self):
        return _serialize(f"{self.method} {self.uri} SIP/2.0", self.headers, self.body)

    def __eq__(self, other):
        if not isinstance(other, Request):
            return NotImplemented
        return ((self.method, self.uri, _content_fields(self.headers), bytes(self.body))
                == (other.method, other.uri, _content_fields(other.headers), bytes(other.body)))


@dataclass(eq=False)
class Response:
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self):
        return _serialize(f"SIP/2.0 {self.status} {self.reason}", self.headers, self.body)

    def __eq__(self, other):
        if not isinstance(other, Response):
            return NotImplemented
        return ((self.status, self.reason, _content_fields(self.headers), bytes(self.body))
                == (other.status, other.reason, _content_fields(other.headers), bytes(other.body)))


def _check_version(version, line):
    match = VERSION_RE.fullmatch(version)
    if not match:
        raise SipParseError(f"no SIP version in start line {_show(line)}")
    if (int(match[1]), int(match[2])) != (2, 0):
        raise SipParseError(f"SIP version {version} is not supported, only SIP/2.0", status=505)


def _check_request_uri(uri, line):
    match = SCHEME_RE.fullmatch(uri)
    if not match or not ABSOLUTE_URI_RE.fullmatch(uri):
        raise SipParseError(f"bad Request-URI in {_show(line)}")
    if match[1].lower() in ("sip", "sips", "tel"):
        parsed = SipUri.parse(uri)
        if parsed.headers:
            raise SipParseError(f"Request-URI must not carry headers (?...): {_show(uri)}")


def _split_head(head):
    """The start line and the ``(name, value)`` fields of a decoded header section, with folded
    lines joined (RFC 3261 section 7.3.1) and values trimmed."""
    lines = [line[:-1] if line.endswith("\r") else line for line in head.split("\n")]
    joined = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not joined:
                raise SipParseError("continuation line before the first header")
            joined[-1] += " " + line.strip(" \t")
        else:
            joined.append(line)
    fields = []
    for line in joined:
        name, colon, value = line.partition(":")
        name, value = name.rstrip(" \t"), value.strip(" \t")
        if not colon or not TOKEN_RE.fullmatch(name):
            raise SipParseError(f"bad header line {_show(line)}")
        if _bare_control(value):
            raise SipParseError(f"control character in header {name}: {_show(value)}")
        fields.append((name, value))
    return lines[0], fields


def _decode_head(data, end):
    try:
        return data[:end].decode("utf-8")
    except UnicodeDecodeError as error:
        raise SipParseError(f"header section is not UTF-8 (byte {error.start})") from None


def _content_length(fields):
    """The Content-Length of a header section, or None when it has none."""
    values = [value for name, value in fields if canonical_name(name) == "Content-Length"]
    if not values:
        return None
    if len(values) > 1:
        raise SipParseError("Content-Length given more than once")
    if not DIGITS_RE.fullmatch(values[0]):
        raise SipParseError(f"Content-Length is not a number of bytes: {_show(values[0])}")
    return int(values[0])


def _start(line):
    if line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        _check_version(version, line)
        if not STATUS_RE.fullmatch(code):
            raise SipParseError(f"status code must be 100-699: {_show(line)}")
        if CONTROL_RE.search(reason.replace("\t", " ")):
            raise SipParseError(f"control character in reason phrase {_show(reason)}")
        return Response(int(code), reason)
    parts = line.split(" ")
    if len(parts) != 3:
        raise SipParseError(f"request line is not 'METHOD Request-URI SIP/2.0' with single spaces: {_show(line)}")
    method, uri, version = parts
    if not TOKEN_RE.fullmatch(method):
        raise SipParseError(f"method is not a token: {_show(line)}")
    _check_version(version, line)
    _check_request_uri(uri, line)
    return Request(method, uri)


def _validate(message):
    headers = message.headers
    for name in REQUIRED_HEADERS:
        if name not in headers:
            raise SipParseError(f"missing {name} header")
    for name in SINGLE_HEADERS:
        if len(headers.get_all(name)) > 1:
            raise SipParseError(f"{name} header given more than once")
    for value in headers.get_all("Via") or [""]:
        Via.parse(value)
    NameAddr.parse(headers.get("From"))
    NameAddr.parse(headers.get("To"))
    call_id = headers.get("Call-ID")
    if not CALL_ID_RE.fullmatch(call_id):
        raise SipParseError(f"bad Call-ID {_show(call_id)}")
    _, method = parse_cseq(headers.get("CSeq"))
    if isinstance(message, Request) and method != message.method:
        raise SipParseError(f"CSeq method {method} does not match request method {message.method}")
    max_forwards = headers.get("Max-Forwards")
    if max_forwards is not None and not (DIGITS_RE.fullmatch(max_forwards)
                                         and int(max_forwards) <= MAX_FORWARDS_LIMIT):
        raise SipParseError(f"Max-Forwards must be 0-{MAX_FORWARDS_LIMIT}: {_show(max_forwards)}")


def parse(data):
    """One SIP message from a datagram (or a frame from ``StreamFramer``). Leading CRLFs
    (keep-alives) are skipped; a body longer than Content-Length is cut to it (RFC 3261 section
    18.3), a shorter one is an error; without Content-Length the body is the rest of the datagram.
    Raises ``SipParseError`` and nothing else for any bytes."""
    data = bytes(data).lstrip(b"\r\n")
    if not data:
        raise SipParseError("no message, only keep-alive CRLFs")
    end = HEADER_END_RE.search(data)
    if end is None:
        raise SipParseError("header section does not end with an empty line")
    start_line, fields = _split_head(_decode_head(data, end.start()))
    message = _start(start_line)
    length = _content_length(fields)
    body = data[end.end():]
    if length is not None:
        if len(body) < length:
            raise SipParseError(f"body is {len(body)} bytes, shorter than Content-Length {length}")
        body = body[:length]
    for name, value in fields:
        message.headers.add(name, value)
    message.headers.set("Content-Length", str(len(body)))
    message.body = body
    _validate(message)
    return message


def make_response(request, status, reason=None, *, to_tag=None, headers=(), body=b"", content_type=None):
    """A response to ``request`` as a UAS builds it (RFC 3261 section 8.2.6): every Via in order,
    From, To (tagged with ``to_tag`` unless it has a tag), Call-ID and CSeq copied; then
    ``headers`` (name, value pairs) in order. Contact and Record-Route are the dialog layer's."""
    if not isinstance(status, int) or not 100 <= status <= 699:
        raise ValueError(f"status must be an integer 100-699, got {status!r}")
    if reason is None:
        reason = REASON_PHRASES.get(status, CLASS_REASONS[status // 100])
    response = Response(status, reason, Headers(), bytes(body))
    for via in request.headers.get_all("Via"):
        response.headers.add("Via", via)
    response.headers.add("From", request.headers.get("From"))
    to = request.headers.get("To")
    if to_tag is not None and NameAddr.parse(to).tag is None:
        to = f"{to};tag={to_tag}"
    response.headers.add("To", to)
    response.headers.add("Call-ID", request.headers.get("Call-ID"))
    response.headers.add("CSeq", request.headers.get("CSeq"))
    for name, value in headers:
        response.headers.add(name, value)
    if content_type is not None:
        response.headers.add("Content-Type", content_type)
    return response


class StreamFramer:
    """Cuts a TCP/TLS byte stream into messages (RFC 3261 section 18.3): each message ends
    Content-Length bytes after its empty line, so Content-Length is required. Keep-alive CRLFs
    between messages are skipped.

    A message that is framed but invalid raises once and is dropped, so the stream goes on (after
    the messages before it in the same chunk are returned). A framing error (no or bad
    Content-Length, over ``max_message`` bytes: status 413) leaves the stream unusable: every later
    ``feed`` raises it again and the connection should be closed."""

    def __init__(self, max_message=MAX_STREAM_MESSAGE):
        self.max_message = max_message
        self._buffer = bytearray()
        self._broken = None

    def feed(self, data):
        if self._broken is not None:
            raise self._broken
        self._buffer += data
        messages = []
        while True:
            try:
                message = self._next(drop_invalid=not messages)
            except SipParseError:
                if messages:
                    return messages
                raise
            if message is None:
                return messages
            messages.append(message)

    def _next(self, drop_invalid):
        """The next whole message, or None until more bytes come. An invalid message is removed
        from the buffer as it raises only when ``drop_invalid`` (else it raises again next time)."""
        while self._buffer[:1] in (b"\r", b"\n"):
            del self._buffer[:1]
        if not self._buffer:
            return None
        end = HEADER_END_RE.search(self._buffer)
        if end is None:
            if len(self._buffer) > self.max_message:
                raise self._fail(SipParseError(f"header section over {self.max_message} bytes", status=413))
            return None
        try:
            _, fields = _split_head(_decode_head(bytes(self._buffer), end.start()))
            length = _content_length(fields)
        except SipParseError as error:
            raise self._fail(error) from None
        if length is None:
            raise self._fail(SipParseError("missing Content-Length, which a stream transport requires"))
        total = end.end() + length
        if total > self.max_message:
            raise self._fail(SipParseError(f"message of {total} bytes is over {self.max_message}", status=413))
        if len(self._buffer) < total:
            return None
        frame = bytes(self._buffer[:total])
        try:
            message = parse(frame)
        except SipParseError:
            if drop_invalid:
                del self._buffer[:total]
            raise
        del self._buffer[:total]
        return message

    def _fail(self, error):
        """Mark the stream unusable; returns ``error`` for the caller to raise."""
        self._broken = error
        self._buffer.clear()
        return error
