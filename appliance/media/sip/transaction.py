"""SIP transactions (RFC 3261 section 17), sans-I/O: messages and ``now`` in, datagrams and
callbacks out, timers kept in a heap the adapter asks about.

A server transaction absorbs retransmitted requests by resending its last response; an INVITE
answered with an error retransmits that error until the ACK comes (timer G, given up at H). A
client transaction retransmits its request over UDP (timer E, or A for INVITE) until a response
comes, and reports a timeout as a synthesized 408 (timer F). Over TCP nothing is retransmitted.
The 2xx to an INVITE is the dialog layer's to retransmit (section 13.3.1.4), not the transaction's.
"""

import heapq
import itertools
import secrets
from dataclasses import dataclass

from parley.appliance.media.sip.message import NameAddr, Response, Via, parse_cseq

T1 = 0.5
"""Round-trip estimate, seconds."""
T2 = 4.0
"""Longest retransmit interval for non-INVITE requests and INVITE responses."""
T4 = 5.0
"""Longest time a message stays in the network."""
TIMEOUT = 64 * T1
"""Timers B, F, H and J: a transaction gives up after 32 s."""
MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True)
class Send:
    """Bytes to put on the wire to ``addr`` over ``transport`` (``udp`` or ``tcp``)."""

    data: bytes
    addr: tuple
    transport: str = "udp"


def new_branch():
    return MAGIC_COOKIE + secrets.token_hex(8)


def new_tag():
    return secrets.token_hex(6)


class Timers:
    """Deadlines and their callbacks; the adapter calls ``run_due(now)`` at ``next_deadline()``."""

    def __init__(self):
        self._heap = []
        self._order = itertools.count()

    def at(self, when, callback):
        entry = [when, next(self._order), callback]
        heapq.heappush(self._heap, entry)
        return entry

    @staticmethod
    def cancel(entry):
        if entry is not None:
            entry[2] = None

    def next_deadline(self):
        while self._heap and self._heap[0][2] is None:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def run_due(self, now):
        while self._heap and self._heap[0][0] <= now:
            _, _, callback = heapq.heappop(self._heap)
            if callback is not None:
                callback(now)


def top_via(message):
    return Via.parse(message.headers.get_all("Via")[0])


def cseq(message):
    return parse_cseq(message.headers.get("CSeq"))


def from_header(message):
    return NameAddr.parse(message.headers.get("From"))


def to_header(message):
    return NameAddr.parse(message.headers.get("To"))


def server_key(request):
    """What identifies a request's server transaction: the top Via's branch and sent-by, and the
    method (ACK belongs to the INVITE's transaction; CANCEL has its own). RFC 2543 peers without
    the magic cookie are matched on Call-ID, CSeq number, From tag and the Via."""
    via = top_via(request)
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE):
        return (branch, via.host, via.port, method)
    return (request.headers.get("Call-ID"), cseq(request)[0], from_header(request).tag, str(via), method)


class ServerTransaction:
    """One incoming request's transaction; ``respond`` sends a response through it."""

    def __init__(self, layer, request, addr, transport):
        self.layer = layer
        self.request = request
        self.addr = addr
        self.transport = transport
        self.key = server_key(request)
        self.invite = request.method == "INVITE"
        self.state = "proceeding" if self.invite else "trying"
        self.final_status = None
        self._last = None
        self._timer = None
        self._interval = T1

    def respond(self, response, now):
        """Send ``response`` (a Response) and move the state machine on."""
        if self.state in ("completed", "confirmed", "terminated"):
            return
        self._last = response.to_bytes()
        self.layer.send(Send(self._last, self.addr, self.transport))
        if response.status < 200:
            self.state = "proceeding"
            return
        self.final_status = response.status
        if self.invite and response.status < 300:
            self._terminate()
        elif self.invite:
            self.state = "completed"
            if self.transport == "udp":
                self._timer = self.layer.timers.at(now + self._interval, self._retransmit)
            self.layer.timers.at(now + TIMEOUT, self._ack_timeout)
        else:
            self.state = "completed"
            self.layer.timers.at(now + (TIMEOUT if self.transport == "udp" else 0), lambda _now: self._terminate())

    def retransmitted(self):
        """The same request came again: resend the last response, if there is one."""
        if self._last is not None and self.state in ("proceeding", "trying", "completed"):
            self.layer.send(Send(self._last, self.addr, self.transport))

    def acked(self, now):
        """An ACK for the error response: stop retransmitting, absorb ACK copies for T4."""
        if self.state != "completed":
            return
        self.state = "confirmed"
        Timers.cancel(self._timer)
        self.layer.timers.at(now + (T4 if self.transport == "udp" else 0), lambda _now: self._terminate())

    def _retransmit(self, now):
        if self.state != "completed":
            return
        self.layer.send(Send(self._last, self.addr, self.transport))
        self._interval = min(2 * self._interval, T2)
        self._timer = self.layer.timers.at(now + self._interval, self._retransmit)

    def _ack_timeout(self, _now):
        if self.state == "completed":
            self._terminate()

    def _terminate(self):
        self.state = "terminated"
        Timers.cancel(self._timer)
        self.layer.server.pop(self.key, None)


class ClientTransaction:
    """One outgoing request's transaction; ``on_response(response, now)`` hears every response,
    and a synthesized 408 when none came in time."""

    def __init__(self, layer, request, addr, transport, on_response):
        self.layer = layer
        self.request = request
        self.addr = addr
        self.transport = transport
        self.on_response = on_response
        self.branch = top_via(request).branch
        self.method = request.method
        self.state = "calling"
        self._data = request.to_bytes()
        self._interval = T1
        self._retransmit_timer = None
        self._timeout_timer = None

    def start(self, now):
        self.layer.send(Send(self._data, self.addr, self.transport))
        if self.transport == "udp":
            self._retransmit_timer = self.layer.timers.at(now + self._interval, self._retransmit)
        self._timeout_timer = self.layer.timers.at(now + TIMEOUT, self._timeout)

    def received(self, response, now):
        if self.state == "terminated":
            return
        if response.status < 200:
            if self.state == "calling":
                self.state = "proceeding"
                if self.method != "INVITE":
                    self._interval = T2
            self.on_response(response, now)
            return
        self._finish()
        self.on_response(response, now)

    def _retransmit(self, now):
        if self.state == "terminated" or (self.method == "INVITE" and self.state == "proceeding"):
            return
        self.layer.send(Send(self._data, self.addr, self.transport))
        self._interval = 2 * self._interval if self.method == "INVITE" else min(2 * self._interval, T2)
        self._retransmit_timer = self.layer.timers.at(now + self._interval, self._retransmit)

    def _timeout(self, now):
        if self.state == "terminated":
            return
        self._finish()
        timeout = Response(408, "Request Timeout", self.request.headers.copy(), b"")
        self.on_response(timeout, now)

    def _finish(self):
        self.state = "terminated"
        Timers.cancel(self._retransmit_timer)
        Timers.cancel(self._timeout_timer)
        self.layer.client.pop((self.branch, self.method), None)


class TransactionLayer:
    """The transactions in flight, keyed for matching, and the datagrams they want sent."""

    def __init__(self):
        self.timers = Timers()
        self.server = {}
        self.client = {}
        self.outbox = []

    def send(self, send):
        self.outbox.append(send)

    def find_server(self, request):
        return self.server.get(server_key(request))

    def new_server(self, request, addr, transport):
        transaction = ServerTransaction(self, request, addr, transport)
        self.server[transaction.key] = transaction
        return transaction

    def find_invite_for_cancel(self, cancel):
        key = server_key(cancel)
        return self.server.get((*key[:-1], "INVITE"))

    def new_client(self, request, addr, transport, on_response, now):
        transaction = ClientTransaction(self, request, addr, transport, on_response)
        self.client[(transaction.branch, transaction.method)] = transaction
        transaction.start(now)
        return transaction

    def match_response(self, response):
        return self.client.get((top_via(response).branch, cseq(response)[1]))
