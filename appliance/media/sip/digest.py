"""HTTP Digest authentication as a SIP client uses it (RFC 3261 section 22, RFC 2617, RFC 8760):
read the PBX's 401/407 challenge, answer with an Authorization (or Proxy-Authorization) value.

MD5 and SHA-256, each also in its -sess form, with qop ``auth`` or without qop (RFC 2069 style,
still common on PBXes). ``auth-int`` is not offered by the PBXes Parley registers with and is
refused rather than half-done.
"""

import hashlib
import re
import secrets
from dataclasses import dataclass

ALGORITHMS = {"MD5": "md5", "MD5-SESS": "md5", "SHA-256": "sha256", "SHA-256-SESS": "sha256"}
"""Supported algorithm names (upper-cased) and their hashlib names."""
CANONICAL_ALGORITHMS = {"MD5": "MD5", "MD5-SESS": "MD5-sess", "SHA-256": "SHA-256", "SHA-256-SESS": "SHA-256-sess",
                        "SHA-512-256": "SHA-512-256", "SHA-512-256-SESS": "SHA-512-256-sess"}
"""How RFC 8760 spells each algorithm name."""
MAX_NONCE_COUNT = 0xFFFFFFFF

TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
AUTH_PARAM_RE = re.compile(rf'[ \t]*({TOKEN})[ \t]*=[ \t]*({TOKEN}|"(?:[^"\\]|\\.)*")[ \t]*', re.DOTALL)
SCHEME_RE = re.compile(rf"[ \t]*({TOKEN})(?:[ \t]+(.*))?", re.DOTALL)


class DigestError(ValueError):
    """A challenge that cannot be read or answered; the message says which part and why."""


def _split_params(text):
    """``text`` split at commas that are not inside a quoted string."""
    pieces, current = [], []
    in_quote = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif in_quote and ch == "\\":
            escaped = True
        elif ch == '"':
            in_quote = not in_quote
        elif ch == "," and not in_quote:
            pieces.append("".join(current))
            current = []
            continue
        current.append(ch)
    pieces.append("".join(current))
    return pieces


def _unquote(value):
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.DOTALL)
    return value


def _quote(value):
    if "\r" in value or "\n" in value:
        raise DigestError(f"credentials cannot contain CR or LF: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Challenge:
    """One ``Digest`` challenge from a WWW-Authenticate or Proxy-Authenticate header."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    """As RFC 8760 spells it: ``MD5``, ``MD5-sess``, ``SHA-256``, ``SHA-256-sess``, or as offered."""
    qop: tuple = ()
    """The offered qop values, lower-cased: ``("auth",)``, ``("auth", "auth-int")`` or none."""
    opaque: str | None = None
    stale: bool = False
    """True when only the nonce expired: answer again without asking for a new password."""

    @classmethod
    def parse(cls, header_value):
        if not isinstance(header_value, str):
            raise DigestError(f"no challenge to parse: {header_value!r}")
        match = SCHEME_RE.fullmatch(header_value)
        if not match or match[1].lower() != "digest":
            raise DigestError(f"not a Digest challenge: {header_value[:80]!r}")
        params = {}
        for piece in _split_params(match[2] or ""):
            if not piece.strip(" \t"):
                continue
            param = AUTH_PARAM_RE.fullmatch(piece)
            if not param:
                raise DigestError(f"bad challenge parameter {piece[:80]!r}")
            params[param[1].lower()] = _unquote(param[2])
        for required in ("realm", "nonce"):
            if required not in params:
                raise DigestError(f"Digest challenge has no {required}: {header_value[:80]!r}")
        algorithm = params.get("algorithm", "MD5")
        qop = tuple(value.strip(" \t").lower() for value in params.get("qop", "").split(",") if value.strip(" \t"))
        return cls(realm=params["realm"], nonce=params["nonce"],
                   algorithm=CANONICAL_ALGORITHMS.get(algorithm.upper(), algorithm), qop=qop,
                   opaque=params.get("opaque"), stale=params.get("stale", "").lower() == "true")

    @property
    def supported(self):
        """Whether ``authorization`` can answer this challenge (pick it when a PBX offers several)."""
        return self.algorithm.upper() in ALGORITHMS and (not self.qop or "auth" in self.qop)


def authorization(challenge, *, method, uri, username, password, cnonce=None, nc=1):
    """The Authorization (or Proxy-Authorization) header value answering ``challenge`` for a
    request with ``method`` to ``uri`` (the Request-URI as sent). ``cnonce`` defaults to a fresh
    random value and is only sent with qop or a -sess algorithm (RFC 2617 section 3.2.2); ``nc``
    counts the requests made with this nonce, from 1."""
    algorithm = challenge.algorithm.upper()
    if algorithm not in ALGORITHMS:
        raise DigestError(f"digest algorithm {challenge.algorithm!r} is not supported; "
                          f"supported: {', '.join(CANONICAL_ALGORITHMS[name] for name in ALGORITHMS)}")
    if challenge.qop and "auth" not in challenge.qop:
        raise DigestError(f"challenge offers only qop {', '.join(challenge.qop)}; only 'auth' is supported")
    if not 1 <= nc <= MAX_NONCE_COUNT:
        raise DigestError(f"nonce count must be 1-{MAX_NONCE_COUNT:#x}, got {nc}")
    qop = "auth" if challenge.qop else None
    session = algorithm.endswith("-SESS")
    if not (qop or session):
        cnonce = None
    elif cnonce is None:
        cnonce = secrets.token_hex(8)

    def digest(text):
        return hashlib.new(ALGORITHMS[algorithm], text.encode("utf-8")).hexdigest()

    ha1 = digest(f"{username}:{challenge.realm}:{password}")
    if session:
        ha1 = digest(f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = digest(f"{method}:{uri}")
    nonce_count = f"{nc:08x}"
    if qop:
        response = digest(f"{ha1}:{challenge.nonce}:{nonce_count}:{cnonce}:{qop}:{ha2}")
    else:
        response = digest(f"{ha1}:{challenge.nonce}:{ha2}")

    parts = [f"username={_quote(username)}", f"realm={_quote(challenge.realm)}", f"nonce={_quote(challenge.nonce)}",
             f"uri={_quote(uri)}", f"response=\"{response}\"", f"algorithm={CANONICAL_ALGORITHMS[algorithm]}"]
    if cnonce is not None:
        parts.append(f"cnonce={_quote(cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop:
        parts += [f"qop={qop}", f"nc={nonce_count}"]
    return "Digest " + ", ".join(parts)
