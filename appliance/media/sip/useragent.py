"""Parley's SIP user agent core (RFC 3261), sans-I/O: it answers calls, keeps their dialogs,
hangs up, transfers with REFER (RFC 3515) and registers with a PBX.

The adapter hands in every datagram with its source and ``now`` and calls ``tick(now)`` at
``next_deadline()``; it sends what ``take_outbox()`` returns and acts on what ``take_events()``
returns. The application answers through ``accept`` / ``reject`` / ``hang_up`` / ``transfer``.

Policy lives here too, before any state is made for a request: a source outside the allow-list
gets 403, a source sending faster than its rate is dropped, a call over the site's cap gets 486,
an offer with no common codec 488, a malformed request 400 (never an exception), an unknown
method 501, a known one this agent does not serve 405.
"""

import ipaddress
import logging
import secrets
from dataclasses import dataclass, field

from parley.appliance.media.sip import sdp
from parley.appliance.media.sip.digest import Challenge, DigestError, authorization
from parley.appliance.media.sip.message import (Headers, NameAddr, Request, Response, SipParseError, SipUri,
                                                make_response, parse)
from parley.appliance.media.sip.transaction import (T1, T2, TIMEOUT, Send, Timers, TransactionLayer, cseq,
                                                    from_header, new_branch, new_tag, to_header, top_via)

log = logging.getLogger("parley.sip")

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, NOTIFY, INFO, REFER"
SERVED = set(ALLOW.replace(",", " ").split())
KNOWN_NOT_SERVED = {"REGISTER", "SUBSCRIBE", "MESSAGE", "UPDATE", "PRACK", "PUBLISH"}
USER_AGENT = "Parley"
TRANSFER_NOTIFY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class SipSettings:
    """How the user agent presents itself and whom it serves; defaults next to each field."""

    host: str = "127.0.0.1"
    """The address in our Via, Contact and SDP (the listener's)."""
    port: int = 5060
    user: str = "parley"
    allow: tuple = ("127.0.0.0/8", "::1/128")
    """Source networks that may send requests (the PBX); anything else gets 403."""
    max_calls: int = 16
    """Calls in progress at once; one more gets 486 Busy Here."""
    rate_per_s: float = 50.0
    """Requests per second one source may send on average..."""
    rate_burst: int = 100
    """...and in one burst; beyond that its requests are dropped unanswered."""
    codecs: tuple = ("PCMU", "PCMA")
    registrar: tuple | None = None
    """(host, port) of the PBX to register with, or None."""
    domain: str | None = None
    """The PBX's SIP domain for our address of record; default the registrar's host."""
    username: str | None = None
    password: str | None = None
    register_expires: int = 300

    def __post_init__(self):
        object.__setattr__(self, "allow", tuple(ipaddress.ip_network(n, strict=False) for n in self.allow))

    def allows(self, ip):
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self.allow)


# ---- events for the application ----------------------------------------------------------------
@dataclass(frozen=True)
class IncomingCall:
    call_id: str
    caller: str
    """The From header's display name and URI, as the phone sent them."""
    offer: sdp.MediaOffer
    source: tuple


@dataclass(frozen=True)
class CallConfirmed:
    call_id: str


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    reason: str
    """``bye`` (the far end hung up), ``cancel``, ``no-ack`` (our 200 was never acknowledged) or
    ``hung-up`` (we sent the BYE)."""


@dataclass(frozen=True)
class MediaChanged:
    call_id: str
    answer: sdp.Answer
    """Our answer to a re-INVITE: ``answer.direction`` is ``recvonly``/``inactive`` while on hold."""


@dataclass(frozen=True)
class DtmfInfo:
    call_id: str
    digit: str
    """A key pressed, sent in a SIP INFO (application/dtmf-relay) instead of RTP."""


@dataclass(frozen=True)
class TransferDone:
    call_id: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class RegistrationState:
    ok: bool
    status: int
    expires: int = 0


@dataclass(frozen=True)
class Refused:
    """A request turned away before it made any state (for counters and logs)."""

    source: tuple
    status: int
    reason: str


@dataclass
class Dialog:
    """One call's dialog as the UAS sees it (RFC 3261 section 12)."""

    call_id: str
    local_tag: str
    local: NameAddr
    remote: NameAddr
    remote_target: SipUri
    route_set: list
    source: tuple
    transport: str
    invite: object
    """The INVITE's server transaction, until answered."""
    offer: sdp.MediaOffer
    remote_cseq: int
    local_cseq: int = 0
    state: str = "offered"
    """offered -> answered (200 sent) -> confirmed (ACK) -> ended."""
    session_version: int = 0
    answer: sdp.Answer | None = None
    media: tuple = ()
    ok_data: bytes = b""
    ok_timer: list | None = None
    ok_since: float = 0.0
    ok_interval: float = T1
    transfer_timer: list | None = None
    session_id: int = field(default_factory=lambda: secrets.randbits(31))
    """The o= line's session id of our SDP (its version counts re-INVITE answers)."""


class UserAgent:
    def __init__(self, settings=SipSettings()):
        self.settings = settings
        self.layer = TransactionLayer()
        self.dialogs = {}
        self._events = []
        self._buckets = {}
        self._registration = _Registration(self) if settings.registrar else None
        self.counters = {"received": 0, "malformed": 0, "rate_limited": 0, "forbidden": 0, "busy": 0}

    # ---- adapter side ---------------------------------------------------------------------
    def receive(self, data, source, now, transport="udp"):
        """One datagram (or one framed stream message) from ``source`` (ip, port)."""
        self.counters["received"] += 1
        if not data.strip(b"\r\n"):
            return  # keep-alive
        if not self._within_rate(source[0], now):
            self.counters["rate_limited"] += 1
            return
        try:
            message = parse(data)
            if isinstance(message, Request):
                self._check_request(message)
            else:
                top_via(message), cseq(message)
        except SipParseError as exc:
            self.counters["malformed"] += 1
            log.info("sip_malformed source=%s:%s error=%s", source[0], source[1], exc)
            self._bad_request(data, source, transport, exc)
            return
        if isinstance(message, Response):
            self._on_response(message, now)
        else:
            self._on_request(message, source, transport, now)

    def tick(self, now):
        self.layer.timers.run_due(now)

    def next_deadline(self):
        return self.layer.timers.next_deadline()

    def take_outbox(self):
        out, self.layer.outbox = self.layer.outbox, []
        return out

    def take_events(self):
        out, self._events = self._events, []
        return out

    def start(self, now):
        """Begin registering with the PBX, when one is configured."""
        if self._registration is not None:
            self._registration.send(now)

    # ---- application side -----------------------------------------------------------------
    def accept(self, call_id, media_port, now):
        """Answer an offered call: 200 OK with our SDP (RTP on ``media_port``)."""
        dialog = self.dialogs.get(call_id)
        if dialog is None or dialog.state != "offered":
            return None
        dialog.answer = sdp.answer(dialog.offer, address=self.settings.host, port=media_port,
                                   session_id=dialog.session_id, session_version=dialog.session_version,
                                   supported=self.settings.codecs)
        dialog.media = (media_port,)
        response = self._response(dialog.invite.request, 200, dialog, body=dialog.answer.sdp)
        dialog.ok_data = response.to_bytes()
        dialog.invite.respond(response, now)
        dialog.invite = None
        dialog.state = "answered"
        dialog.ok_since = now
        dialog.ok_timer = self.layer.timers.at(now + T1, lambda t: self._retransmit_ok(dialog, t))
        return dialog.answer

    def reject(self, call_id, status, now, reason=None):
        dialog = self.dialogs.get(call_id)
        if dialog is None or dialog.state != "offered":
            return
        dialog.invite.respond(make_response(dialog.invite.request, status, reason, to_tag=dialog.local_tag), now)
        self._end(dialog, "rejected", now, emit=False)

    def hang_up(self, call_id, now):
        """End a call from our side: BYE once answered, 480 while still offered."""
        dialog = self.dialogs.get(call_id)
        if dialog is None or dialog.state == "ended":
            return
        if dialog.state == "offered":
            self.reject(call_id, 480, now)
            return
        self._send_in_dialog(dialog, "BYE", now, lambda response, t: None)
        self._end(dialog, "hung-up", now)

    def transfer(self, call_id, target, now, handoff_id=None):
        """Blind transfer (RFC 3515): REFER the caller to ``target`` (a SIP URI or an extension);
        the outcome comes back as ``TransferDone``."""
        dialog = self.dialogs.get(call_id)
        if dialog is None or dialog.state not in ("answered", "confirmed"):
            self._events.append(TransferDone(call_id, False, "no call to transfer"))
            return
        uri = self._transfer_uri(target, dialog)
        headers = [("Refer-To", f"<{uri}?X-Parley-Handoff={handoff_id}>" if handoff_id else f"<{uri}>"),
                   ("Referred-By", f"<sip:{self.settings.user}@{self.settings.host}:{self.settings.port}>")]
        if handoff_id:
            headers.append(("X-Parley-Handoff", str(handoff_id)))

        def on_response(response, t):
            if response.status >= 300:
                self._transfer_done(dialog, False, f"REFER answered {response.status} {response.reason}")
        self._send_in_dialog(dialog, "REFER", now, on_response, headers)
        dialog.transfer_timer = self.layer.timers.at(
            now + TRANSFER_NOTIFY_TIMEOUT_S, lambda t: self._transfer_done(dialog, False, "no NOTIFY from the transferee"))

    # ---- requests ---------------------------------------------------------------------------
    def _check_request(self, request):
        """What every request must carry before anything acts on it (SipParseError otherwise)."""
        top_via(request)
        from_header(request)
        to_header(request)
        number, method = cseq(request)
        if method != request.method:
            raise SipParseError(f"CSeq method {method} does not match the request's {request.method}")

    def _on_request(self, request, source, transport, now):
        if not self.settings.allows(source[0]):
            self.counters["forbidden"] += 1
            self._refuse(request, source, transport, 403, "source not on the allow-list", now)
            return
        if request.method == "ACK":
            self._on_ack(request, now)
            return
        known = self.layer.find_server(request)
        if known is not None:
            known.retransmitted()
            return
        if request.method == "INVITE" and self._resend_ok(request, source, transport):
            return
        transaction = self.layer.new_server(request, source, transport)
        handler = getattr(self, f"_on_{request.method.lower()}", None) if request.method in SERVED else None
        if request.headers.get("Max-Forwards", "70").strip() == "0" and request.method != "OPTIONS":
            transaction.respond(make_response(request, 483), now)
        elif handler is None:
            status = 405 if request.method in KNOWN_NOT_SERVED else 501
            transaction.respond(make_response(request, status, headers=[("Allow", ALLOW)]), now)
        elif (unsupported := request.headers.get_all("Require")) and request.method not in ("CANCEL", "ACK"):
            transaction.respond(make_response(request, 420, headers=[("Unsupported", ", ".join(unsupported))]), now)
        else:
            handler(request, transaction, source, transport, now)

    def _on_invite(self, request, transaction, source, transport, now):
        to = to_header(request)
        if to.tag is not None:
            self._on_reinvite(request, transaction, now)
            return
        live = sum(1 for d in self.dialogs.values() if d.state != "ended")
        if live >= self.settings.max_calls:
            self.counters["busy"] += 1
            transaction.respond(make_response(request, 486, to_tag=new_tag()), now)
            self._events.append(Refused(source, 486, "concurrent-call cap reached"))
            return
        try:
            offer = sdp.parse_offer(request.body)
        except sdp.SdpError as exc:
            transaction.respond(make_response(request, 488, to_tag=new_tag(), headers=[("Warning", f'399 parley "{exc}"')]),
                                now)
            self._events.append(Refused(source, 488, str(exc)))
            return
        if not any(codec.name in self.settings.codecs for codec in offer.codecs):
            transaction.respond(make_response(request, 488, to_tag=new_tag(),
                                              headers=[("Warning", '305 parley "no common codec: PCMU or PCMA"')]), now)
            self._events.append(Refused(source, 488, "no common codec"))
            return
        call_id = request.headers.get("Call-ID")
        if call_id in self.dialogs:
            transaction.respond(make_response(request, 482, "Loop Detected"), now)
            return
        tag = new_tag()
        contact = request.headers.get_all("Contact")
        dialog = Dialog(call_id=call_id, local_tag=tag, local=to.with_tag(tag), remote=from_header(request),
                        remote_target=NameAddr.parse(contact[0]).uri if contact else from_header(request).uri,
                        route_set=list(request.headers.get_all("Record-Route")), source=source,
                        transport=transport, invite=transaction, offer=offer, remote_cseq=cseq(request)[0])
        self.dialogs[call_id] = dialog
        transaction.respond(make_response(request, 100), now)
        transaction.respond(self._response(request, 180, dialog), now)
        caller = request.headers.get("From")
        self._events.append(IncomingCall(call_id, caller, offer, source))

    def _resend_ok(self, request, source, transport):
        """An INVITE we already answered, sent again (its transaction ended with our 2xx): resend
        the 2xx rather than take it for a new call (RFC 3261 13.3.1.4)."""
        dialog = self.dialogs.get(request.headers.get("Call-ID"))
        if (dialog is None or not dialog.ok_data or to_header(request).tag is not None
                or from_header(request).tag != dialog.remote.tag or cseq(request)[0] != dialog.remote_cseq):
            return False
        if dialog.state in ("answered", "confirmed"):
            self.layer.send(Send(dialog.ok_data, source, transport))
        return True

    def _on_reinvite(self, request, transaction, now):
        dialog = self._dialog_for(request)
        if dialog is None:
            transaction.respond(make_response(request, 481), now)
            return
        if dialog.state == "answered":
            transaction.respond(make_response(request, 491), now)
            return
        try:
            offer = sdp.parse_offer(request.body) if request.body else dialog.offer
            dialog.session_version += 1
            answer = sdp.answer(offer, address=self.settings.host, port=dialog.media[0], session_id=dialog.session_id,
                                session_version=dialog.session_version, supported=self.settings.codecs)
        except sdp.SdpError as exc:
            transaction.respond(make_response(request, 488, headers=[("Warning", f'399 parley "{exc}"')]), now)
            return
        dialog.offer, dialog.answer = offer, answer
        contact = request.headers.get_all("Contact")
        if contact:
            dialog.remote_target = NameAddr.parse(contact[0]).uri
        dialog.remote_cseq = cseq(request)[0]
        transaction.respond(self._response(request, 200, dialog, body=answer.sdp), now)
        self._events.append(MediaChanged(dialog.call_id, answer))

    def _on_ack(self, request, now):
        transaction = self.layer.find_server(request)
        if transaction is not None:
            transaction.acked(now)
            return
        dialog = self._dialog_for(request)
        if dialog is not None and dialog.state == "answered":
            Timers.cancel(dialog.ok_timer)
            dialog.state = "confirmed"
            self._events.append(CallConfirmed(dialog.call_id))

    def _on_bye(self, request, transaction, source, transport, now):
        dialog = self._answer_in_dialog(request, transaction, now)
        if dialog is None:
            return
        self._end(dialog, "bye", now)

    def _on_cancel(self, request, transaction, source, transport, now):
        invite = self.layer.find_invite_for_cancel(request)
        if invite is None:
            transaction.respond(make_response(request, 481), now)
            return
        transaction.respond(make_response(request, 200), now)
        dialog = self.dialogs.get(request.headers.get("Call-ID"))
        if invite.final_status is None and dialog is not None and dialog.state == "offered":
            invite.respond(make_response(invite.request, 487, to_tag=dialog.local_tag), now)
            self._end(dialog, "cancel", now)

    def _on_options(self, request, transaction, source, transport, now):
        transaction.respond(make_response(request, 200, headers=[("Allow", ALLOW), ("Accept", "application/sdp"),
                                                                 ("User-Agent", USER_AGENT)]), now)

    def _on_info(self, request, transaction, source, transport, now):
        dialog = self._answer_in_dialog(request, transaction, now)
        if dialog is None:
            return
        kind = (request.headers.get("Content-Type") or "").lower()
        if kind.startswith("application/dtmf-relay"):
            for line in request.body.decode("latin-1").splitlines():
                name, _, value = line.partition("=")
                if name.strip().lower() == "signal" and value.strip():
                    self._events.append(DtmfInfo(dialog.call_id, value.strip()[0]))

    def _on_notify(self, request, transaction, source, transport, now):
        dialog = self._answer_in_dialog(request, transaction, now)
        if dialog is None:
            return
        if (request.headers.get("Event") or "").split(";")[0].strip().lower() != "refer":
            return
        status_line = request.body.decode("latin-1").strip().splitlines()[:1]
        parts = status_line[0].split(None, 2) if status_line else []
        if len(parts) >= 2 and parts[1].isdigit():
            status = int(parts[1])
            if status >= 200:
                self._transfer_done(dialog, status < 300, f"the transferee reported {status_line[0]}")

    def _on_refer(self, request, transaction, source, transport, now):
        transaction.respond(make_response(request, 403, headers=[("Warning", '399 parley "the agent does not transfer on request"')]),
                            now)

    # ---- responses ---------------------------------------------------------------------------
    def _on_response(self, response, now):
        transaction = self.layer.match_response(response)
        if transaction is not None:
            transaction.received(response, now)

    # ---- dialogs -----------------------------------------------------------------------------
    def _answer_in_dialog(self, request, transaction, now):
        """200 to a request within a call we hold, and that call; 481 and None otherwise."""
        dialog = self._dialog_for(request)
        transaction.respond(make_response(request, 481 if dialog is None else 200), now)
        return dialog

    def _dialog_for(self, request):
        to = to_header(request)
        dialog = self.dialogs.get(request.headers.get("Call-ID"))
        if dialog is None or dialog.state == "ended" or to.tag != dialog.local_tag:
            return None
        if from_header(request).tag != dialog.remote.tag:
            return None
        return dialog

    def _response(self, request, status, dialog, body=b""):
        headers = [("Contact", self._contact(dialog.transport)), ("Allow", ALLOW), ("User-Agent", USER_AGENT)]
        headers += [("Record-Route", route) for route in request.headers.get_all("Record-Route")]
        return make_response(request, status, to_tag=dialog.local_tag, headers=headers, body=body,
                             content_type="application/sdp" if body else None)

    def _retransmit_ok(self, dialog, now):
        """RFC 3261 13.3.1.4: resend the 2xx until the ACK; no ACK in 64*T1 ends the call."""
        if dialog.state != "answered":
            return
        if now - dialog.ok_since >= TIMEOUT:
            log.warning("sip_no_ack call_id=%s", dialog.call_id)
            self._send_in_dialog(dialog, "BYE", now, lambda response, t: None)
            self._end(dialog, "no-ack", now)
            return
        self.layer.send(Send(dialog.ok_data, dialog.source, dialog.transport))
        dialog.ok_interval = min(2 * dialog.ok_interval, T2)
        dialog.ok_timer = self.layer.timers.at(now + dialog.ok_interval, lambda t: self._retransmit_ok(dialog, t))

    def _send_in_dialog(self, dialog, method, now, on_response, headers=()):
        dialog.local_cseq += 1
        request = Request(method, str(dialog.remote_target), Headers(), b"")
        request.headers.add("Via", self._via(dialog.transport))
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", str(dialog.local))
        request.headers.add("To", str(dialog.remote))
        request.headers.add("Call-ID", dialog.call_id)
        request.headers.add("CSeq", f"{dialog.local_cseq} {method}")
        for route in dialog.route_set:
            request.headers.add("Route", route)
        request.headers.add("Contact", self._contact(dialog.transport))
        request.headers.add("User-Agent", USER_AGENT)
        for name, value in headers:
            request.headers.add(name, value)
        self.layer.new_client(request, self._next_hop(dialog), dialog.transport, on_response, now)

    def _next_hop(self, dialog):
        """Where an in-dialog request goes: the first route, else the remote target, else (a name
        we cannot resolve without DNS) back where the call came from."""
        uri = NameAddr.parse(dialog.route_set[0]).uri if dialog.route_set else dialog.remote_target
        try:
            ipaddress.ip_address(uri.host.strip("[]"))
        except ValueError:
            return dialog.source
        return (uri.host.strip("[]"), uri.port or 5060)

    def _end(self, dialog, reason, now, emit=True):
        if dialog.state == "ended":
            return
        dialog.state = "ended"
        Timers.cancel(dialog.ok_timer)
        Timers.cancel(dialog.transfer_timer)
        if emit:
            self._events.append(CallEnded(dialog.call_id, reason))
        self.layer.timers.at(now + TIMEOUT, lambda t: self.dialogs.pop(dialog.call_id, None))

    def _transfer_done(self, dialog, ok, detail):
        if dialog.transfer_timer is None:
            return
        Timers.cancel(dialog.transfer_timer)
        dialog.transfer_timer = None
        self._events.append(TransferDone(dialog.call_id, ok, detail))

    def _transfer_uri(self, target, dialog):
        target = str(target)
        if target.startswith(("sip:", "sips:")):
            return target
        host = self.settings.domain or (self.settings.registrar[0] if self.settings.registrar else dialog.source[0])
        return f"sip:{target}@{host}"

    def _via(self, transport):
        return f"SIP/2.0/{transport.upper()} {self.settings.host}:{self.settings.port};branch={new_branch()};rport"

    def _contact(self, transport="udp"):
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"<sip:{self.settings.user}@{self.settings.host}:{self.settings.port}{suffix}>"

    # ---- refusing ------------------------------------------------------------------------------
    def _within_rate(self, ip, now):
        tokens, last = self._buckets.get(ip, (self.settings.rate_burst, now))
        tokens = min(self.settings.rate_burst, tokens + (now - last) * self.settings.rate_per_s)
        if tokens < 1:
            self._buckets[ip] = (tokens, now)
            return False
        self._buckets[ip] = (tokens - 1, now)
        return True

    def _refuse(self, request, source, transport, status, reason, now):
        self._events.append(Refused(source, status, reason))
        self.layer.send(Send(make_response(request, status, headers=[("Warning", f'399 parley "{reason}"')]).to_bytes(),
                             source, transport))

    def _bad_request(self, data, source, transport, error):
        """400 (or the error's status) to a request too broken to parse, copying what can be read of
        its Via, From, To, Call-ID and CSeq; a broken response or ACK gets nothing."""
        head = data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n").split(b"\n")
        start = head[0].decode("latin-1", "replace").split()
        if not start or start[0].upper().startswith("SIP/") or start[0].upper() == "ACK":
            return
        copied = []
        for line in head[1:]:
            name, colon, value = line.decode("latin-1", "replace").partition(":")
            canonical = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID"}.get(name.strip().lower(), name.strip())
            if colon and canonical.lower() in ("via", "from", "to", "call-id", "cseq"):
                copied.append(f"{canonical}: {value.strip()}")
        if not any(line.lower().startswith("via:") for line in copied):
            return
        status = getattr(error, "status", 400) or 400
        reason = {400: "Bad Request", 413: "Request Entity Too Large", 505: "Version Not Supported"}.get(status, "Bad Request")
        warning = str(error).replace('"', "'")[:200]
        text = "\r\n".join([f"SIP/2.0 {status} {reason}", *copied, f'Warning: 399 parley "{warning}"',
                            "Content-Length: 0", "", ""])
        self.layer.send(Send(text.encode("latin-1", "replace"), source, transport))


class _Registration:
    """REGISTER with the PBX (digest when challenged), refreshed before it expires."""

    def __init__(self, agent):
        self.agent = agent
        settings = agent.settings
        self.domain = settings.domain or settings.registrar[0]
        self.call_id = f"{new_tag()}@{settings.host}"
        self.tag = new_tag()
        self.cseq = 0
        self.challenge = None
        self.tried_nonce = None

    def send(self, now):
        settings = self.agent.settings
        self.cseq += 1
        aor = f"sip:{settings.username or settings.user}@{self.domain}"
        uri = f"sip:{self.domain}"
        request = Request("REGISTER", uri, Headers(), b"")
        request.headers.add("Via", self.agent._via("udp"))
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", f"<{aor}>;tag={self.tag}")
        request.headers.add("To", f"<{aor}>")
        request.headers.add("Call-ID", self.call_id)
        request.headers.add("CSeq", f"{self.cseq} REGISTER")
        request.headers.add("Contact", self.agent._contact())
        request.headers.add("Expires", str(settings.register_expires))
        request.headers.add("User-Agent", USER_AGENT)
        if self.challenge is not None:
            name = "Proxy-Authorization" if self.challenge[0] == 407 else "Authorization"
            try:
                value = authorization(self.challenge[1], method="REGISTER", uri=uri,
                                      username=settings.username or settings.user, password=settings.password or "")
            except DigestError as exc:
                self._failed(now, 0, f"cannot answer the PBX's challenge: {exc}")
                return
            request.headers.add(name, value)
        self.agent.layer.new_client(request, tuple(settings.registrar), "udp", self._on_response, now)

    def _on_response(self, response, now):
        if response.status < 200:
            return
        if response.status in (401, 407):
            header = "Proxy-Authenticate" if response.status == 407 else "WWW-Authenticate"
            try:
                challenge = Challenge.parse(response.headers.get(header) or "")
            except (DigestError, SipParseError) as exc:
                self._failed(now, response.status, f"unreadable challenge: {exc}")
                return
            if challenge.nonce == self.tried_nonce and not challenge.stale:
                self._failed(now, response.status, "the PBX refused our credentials")
                return
            self.challenge, self.tried_nonce = (response.status, challenge), challenge.nonce
            self.send(now)
            return
        if response.status >= 300:
            self._failed(now, response.status, f"{response.status} {response.reason}")
            return
        expires = self._granted(response)
        self.agent._events.append(RegistrationState(True, response.status, expires))
        log.info("sip_registered registrar=%s expires=%d", self.agent.settings.registrar, expires)
        self.agent.layer.timers.at(now + max(expires - 30, expires / 2), self.send)

    def _granted(self, response):
        ours = self.agent._contact()
        for contact in response.headers.get_all("Contact"):
            parsed = NameAddr.parse(contact)
            if str(parsed.uri) == ours.strip("<>") and "expires" in parsed.params:
                return int(parsed.params["expires"])
        try:
            return int(response.headers.get("Expires") or self.agent.settings.register_expires)
        except ValueError:
            return self.agent.settings.register_expires

    def _failed(self, now, status, detail):
        log.warning("sip_register_failed registrar=%s status=%s detail=%s", self.agent.settings.registrar, status, detail)
        self.agent._events.append(RegistrationState(False, status))
        self.challenge = self.tried_nonce = None
        self.agent.layer.timers.at(now + 30.0, self.send)
