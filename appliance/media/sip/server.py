"""The SIP channel on asyncio: sockets, clocks and RTP around the sans-I/O user agent, and one
``CallSession`` per answered call (the same loop, workers, trace and store as any other call).

SIP signalling and RTCP run on the asyncio loop; one media clock thread ticks every call each
20 ms, so a busy loop (a burst of datagrams, a call being set up) cannot make a packet late. Each
tick first reads what arrived on every call's RTP socket (the kernel stamps each datagram's
arrival, so the jitter figures do not depend on when the tick ran): no callback per packet on the
loop, and no handing the GIL back and forth between two threads 2,500 times a second at 50 calls.
The clock computes each tick's frames two ticks ahead and hands them to a pacer, a thread in C
that never takes the GIL and sends each batch at its deadline (``parley.core.pacing.Pacer``):
a packet's send time depends neither on how many calls are being computed nor on what other
Python threads do (the price: 40 ms of delay on the way out). Clock and pacer ask for real-time
scheduling where allowed, so other processes on a busy machine cannot hold them up. A call's
lock keeps its session to one thread at a time; what the clock decides for the user agent (hang
up, transfer) is handed to the loop. Every packet's lateness against its ideal send time is
counted. What the process holds when it starts serving is moved out of the garbage collector's
sight (``gc.freeze``): a full collection over a big heap stalls every thread for tens of
milliseconds, long enough to make packets late.

Received RTP goes through the core's jitter buffer (``CallSession.feed_rtp``); the far end's
address is latched from its first packet (symmetric RTP, RFC 4961). RFC 4733 key presses and SIP
INFO key presses reach the session as typed input. RTCP sender reports go out every 5 s; the
phone's own reports of loss and jitter are kept and stored with ours when the call ends.
"""

import asyncio
import gc
import logging
import os
import random
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from parley.appliance.media.rtp import (Bye, DtmfReceiver, ReceiverReport, ReceiverStats, RtpError, RtpPacket,
                                        RtpSender, SenderReport, build_rtcp, parse_rtcp)
from parley.appliance.media.sip.message import SipParseError, StreamFramer
from parley.appliance.media.sip.useragent import (CallConfirmed, CallEnded, DtmfInfo, IncomingCall, MediaChanged,
                                                  Refused, RegistrationState, TransferDone, UserAgent)
from parley.core import pacing
from parley.core.pacing import sockaddr

log = logging.getLogger("parley.sip")

FRAME_S = 0.02
FRAME_NS = 20_000_000
LEAD_FRAMES = 2
"""Frames are computed this many ticks before they are sent: a tick that computes slowly (a
call being set up, the GIL busy elsewhere) delays no packet, for 40 ms more delay on the way out."""
SAMPLES_PER_FRAME = 160
RTCP_INTERVAL_S = 5.0
SWITCH_INTERVAL_S = 0.0002
"""How long a thread that wants the GIL waits before asking its holder to let go (Python's default
is 5 ms): every send releases the GIL, and the clock must get it back quickly each time."""
KEEP_FINISHED = 1000
KEEP_TICKS = 30_000
"""Ten minutes of tick timings."""
LATE_MS = 5.0
"""A packet sent more than this after its ideal time counts as late."""
RECEIVE_BATCH = 16
"""Most datagrams read from one call's RTP socket per tick (a phone sends one): a flood waits in,
and overflows, the kernel's buffer instead of holding up every other call's tick."""
RTP_MAX_BYTES = 2048
"""Largest RTP datagram read whole; a longer one is cut and then fails to parse."""
SO_TIMESTAMPNS = 35
"""Linux's socket option (and control message) for a datagram's arrival time in nanoseconds."""
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)


@dataclass(frozen=True)
class MediaSettings:
    rtp_ports: tuple = (20000, 20998)
    """Even RTP ports are taken from this range, RTCP on the odd one above."""
    transfer_target: str | None = None
    """Where ``transfer_to_human`` sends callers (an extension or a SIP URI); None: the agent
    file's ``escalation.transfer_extension``."""


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram):
        self.on_datagram = on_datagram
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.on_datagram(data, addr)


class MediaCall:
    """One answered call: its session, RTP in and out, RTCP, and the way it ends."""

    def __init__(self, server, sip_call_id, session, answer, rtp, rtcp, port):
        self.server = server
        self.sip_call_id = sip_call_id
        self.session = session
        self.codec = answer.codec
        self.dtmf_payload_type = answer.dtmf_payload_type
        self.remote = answer.remote
        self.remote_rtcp = (answer.remote[0], answer.remote[1] + 1)
        self.sending = answer.direction in ("sendrecv", "sendonly")
        self.rtp, self.rtcp = rtp, rtcp
        """Plain UDP sockets: the media clock thread reads and sends RTP; the loop reads RTCP."""
        self.rtcp_endpoint = None
        """The loop's protocol over the RTCP socket, closed when the call ends."""
        self.port = port
        self.lock = threading.Lock()
        """Held while a thread uses the session: the clock's tick, the loop's RTP, keys and events."""
        self.sender = RtpSender(answer.codec.payload_type, rng=random.Random())
        self.stats = ReceiverStats()
        self.dtmf = DtmfReceiver()
        self.keys = []
        self.latched = False
        self.late_packets = 0
        self.max_late_ms = 0.0
        self.send_errors = 0
        self.looped = 0
        """Packets that came back carrying our own SSRC (a peer or network echoing our stream)."""
        self._sockaddr = (None, None)
        self.remote_report = None
        self.next_rtcp = time.monotonic() + RTCP_INTERVAL_S
        self.state = "talking"
        """talking -> transferring -> closing -> done."""
        self.ended_by = None

    # ---- in ------------------------------------------------------------------------------------
    def receive(self, realtime_offset_ns):
        """Read what arrived on the RTP port since the last tick, at most ``RECEIVE_BATCH``
        datagrams (clock thread, under the lock). ``realtime_offset_ns`` turns the kernel's
        arrival stamps (wall clock) into ``time.monotonic_ns``."""
        for _ in range(RECEIVE_BATCH):
            try:
                data, ancillary, _, addr = self.rtp.recvmsg(RTP_MAX_BYTES, _ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.info("sip_rtp_receive_failed call_id=%s error=%s", self.session.call_id, exc)
                return
            self.on_rtp(data, addr, _arrival_ns(ancillary, realtime_offset_ns))

    def on_rtp(self, data, addr, arrival_ns):
        """A datagram on our RTP port that arrived at ``arrival_ns`` (monotonic; under the lock): the
        caller's audio, a key press, or something to drop (not RTP, another payload type, or our own
        stream come back: RFC 3550 8.2's loop)."""
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            return
        if packet.ssrc == self.sender.ssrc:
            self.looped += 1
            return
        if not self.latched:
            self.remote, self.remote_rtcp, self.latched = addr, (addr[0], addr[1] + 1), True
        if packet.payload_type == self.dtmf_payload_type:
            try:
                digit = self.dtmf.feed(packet)
            except RtpError:
                return
            if digit is not None:
                self._feed_key(digit)
            return
        if packet.payload_type != self.codec.payload_type:
            return
        self.stats.update(packet, arrival_ns / 1e9)
        if self.state != "done":
            self.session.feed_rtp(packet.sequence, packet.timestamp, packet.payload, arrival_ns)

    def on_rtcp(self, data, addr):
        try:
            reports = parse_rtcp(data)
        except RtpError:
            return
        with self.lock:
            self._on_reports(reports)

    def _on_reports(self, reports):
        for report in reports:
            if isinstance(report, SenderReport):
                self.stats.sender_report_received(report, time.monotonic())
            if isinstance(report, (SenderReport, ReceiverReport)):
                for block in report.reports:
                    if block.ssrc == self.sender.ssrc:
                        self.remote_report = block

    def key(self, digit):
        """A key press from a SIP INFO (the loop's thread)."""
        with self.lock:
            self._feed_key(digit)

    def _feed_key(self, digit):
        self.keys.append(digit)
        if self.state != "done":
            self.session.feed_dtmf(digit)

    # ---- out -----------------------------------------------------------------------------------
    def _to_send(self, packet):
        """``packet`` as ``pacing.Pacer.submit`` takes it: (socket, bytes, sockaddr, address)."""
        if self._sockaddr[0] != self.remote:
            self._sockaddr = (self.remote, sockaddr(*self.remote))
        return self.rtp, packet, self._sockaddr[1], self.remote

    def sent(self, late_ns):
        """Count one packet sent ``late_ns`` after its time (None: not sent, the socket refused it
        or the pacer was full)."""
        if late_ns is None:
            self.send_errors += 1
            return
        late_ms = late_ns / 1e6
        self.max_late_ms = max(self.max_late_ms, late_ms)
        if late_ms > LATE_MS:
            self.late_packets += 1

    def compute(self, now):
        """One tick of the session (clock thread, under the lock): RTCP when due, what the
        session's state asks of the user agent, and the next packet to send (or None)."""
        packet = None
        frame = self.session.next_frame()
        if frame is not None:
            if self.sending:
                packet = self._to_send(self.sender.packet(bytes(frame), SAMPLES_PER_FRAME))
            else:
                self.sender.skip(SAMPLES_PER_FRAME)
        if now >= self.next_rtcp:
            self.next_rtcp = now + RTCP_INTERVAL_S
            try:
                self.rtcp.sendto(self._report(), self.remote_rtcp)
            except OSError:
                pass
        self._follow_session()
        self._after_apology()
        return packet

    def _report(self, bye=False):
        blocks = (self.stats.report_block(now_s=time.monotonic()),) if self.stats.received else ()
        return build_rtcp(self.sender.sender_report(time.time(), reports=blocks), cname=f"parley@{self.server.agent.settings.host}",
                          bye=Bye((self.sender.ssrc,), None) if bye else None)

    def _follow_session(self):
        """Once the agent has closed the call and its last words have played: transfer or hang up."""
        session = self.session
        if self.state != "talking" or not session.closed.is_set() or session.agent_speaking:
            return
        target = self.server.media.transfer_target or session.agent.escalation.transfer_extension
        if session.outcome == "escalated" and session.handoff is not None and target:
            self.state = "transferring"
            self.server.on_loop(self.server.agent.transfer, self.sip_call_id, target,
                                handoff_id=session.handoff.get("id") or session.call_id)
            return
        self.state = "closing"
        self.ended_by = "agent"
        self.server.on_loop(self.server.agent.hang_up, self.sip_call_id)

    def transfer_done(self, ok, detail):
        """On the loop: the transferee took the call (hang up), or did not (apologise first)."""
        log.info("sip_transfer call_id=%s ok=%s detail=%s", self.session.call_id, ok, detail)
        if ok:
            self.ended_by = "transfer"
            self.state = "closing"
            self.server.agent.hang_up(self.sip_call_id, time.monotonic())
            return
        with self.lock:
            self.state = "apologising"
            self.session.say_fixed("apology")

    def media_changed(self, answer):
        self.sending = answer.direction in ("sendrecv", "sendonly")
        if not self.latched:
            self.remote = answer.remote
            self.remote_rtcp = (answer.remote[0], answer.remote[1] + 1)

    def _after_apology(self):
        if self.state == "apologising" and not self.session.agent_speaking:
            self.state = "closing"
            self.ended_by = "agent"
            self.server.on_loop(self.server.agent.hang_up, self.sip_call_id)

    def media_record(self):
        remote = self.remote_report
        return {"sip_call_id": self.sip_call_id, "remote": f"{self.remote[0]}:{self.remote[1]}",
                "codec": self.codec.name, "packets_sent": self.sender.packet_count,
                "packets_received": self.stats.received, "packets_lost": self.stats.cumulative_lost,
                "jitter_ms": round(self.stats.jitter_ms, 3),
                "remote_lost": remote.cumulative_lost if remote else None,
                "remote_jitter_ms": round(remote.jitter * 1000 / 8000, 3) if remote else None,
                "late_packets": self.late_packets, "max_late_ms": round(self.max_late_ms, 3),
                "dtmf_keys": "".join(self.keys), "ended_by": self.ended_by or "caller"}


class SipServer:
    """Listens for SIP on UDP and TCP at ``agent.settings.host:port`` and runs every call.

    ``session_factory(caller, codec)`` makes the ``CallSession`` for an answered call (8 kHz,
    ``pcmu`` or ``pcma``); ``on_call_end(media_call)`` hears each finished call (default: its
    media record is written to the store by the session's recorder)."""

    def __init__(self, agent, session_factory, *, media=MediaSettings(), store_media=None):
        self.agent = agent if isinstance(agent, UserAgent) else UserAgent(agent)
        self.session_factory = session_factory
        self.media = media
        self.store_media = store_media
        self.calls = {}
        self.finished = deque(maxlen=KEEP_FINISHED)
        """The MediaCalls that ended most recently, oldest first (tests and the load figures read these)."""
        self.calls_finished = 0
        self.registration = None
        self._udp = None
        self._tcp_server = None
        self._streams = {}
        self._ports = set()
        self._timer = None
        self._loop = None
        self.ticks = 0
        self.tick_overruns = 0
        self.peak_calls = 0
        """The most calls in progress at once."""
        self.clock_realtime = False
        """Whether the media clock thread got real-time scheduling (root or CAP_SYS_NICE)."""
        self.sender_realtime = False
        """Whether the pacer's thread did."""
        self.tick_ms = deque(maxlen=KEEP_TICKS)
        """How long each recent tick's computing took (every call's session), for the load figures."""
        self.send_late_ms = deque(maxlen=KEEP_TICKS)
        """How late the last packet of each recent batch left, after its deadline."""
        self.batches_dropped = 0
        """Batches not sent because the pacer still held ``slots`` of them (its thread fell behind)."""
        self.late_batches = deque(maxlen=KEEP_TICKS)
        """``(deadline_ns, worst_ms, woke_late_ms)`` of each recent batch with a packet more than
        ``LATE_MS`` late; ``woke_late_ms`` of it the pacer's thread woke late, the machine's doing."""

    # ---- life cycle ------------------------------------------------------------------------------
    async def serve(self, stop, ready=None):
        """Run until ``stop`` (an asyncio.Event) is set; ``ready`` (an Event) is set once listening."""
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        gc.freeze()
        self._loop = asyncio.get_running_loop()
        settings = self.agent.settings
        self._udp, _ = await self._loop.create_datagram_endpoint(
            lambda: _DatagramProtocol(lambda data, addr: self._on_sip(data, addr, "udp")), local_addr=(settings.host, settings.port))
        self._tcp_server = await asyncio.start_server(self._on_tcp, settings.host, settings.port)
        self.agent.start(time.monotonic())
        self.flush()
        log.info("sip_listening host=%s port=%d", settings.host, settings.port)
        if ready is not None:
            ready.set()
        self._clock_stop = threading.Event()
        clock = threading.Thread(target=self._media_clock, name="media-clock", daemon=True)
        clock.start()
        try:
            await stop.wait()
        finally:
            for media_call in list(self.calls.values()):
                media_call.ended_by = media_call.ended_by or "shutdown"
                self.agent.hang_up(media_call.sip_call_id, time.monotonic())
            self.flush()
            self._clock_stop.set()
            await self._loop.run_in_executor(None, clock.join)
            for media_call in list(self.calls.values()):
                await self._end_call(media_call)
            if self._timer is not None:
                self._timer.cancel()
            self._udp.close()
            self._tcp_server.close()

    # ---- SIP -------------------------------------------------------------------------------------
    def _on_sip(self, data, addr, transport):
        self.agent.receive(data, addr[:2], time.monotonic(), transport)
        self.flush()

    async def _on_tcp(self, reader, writer):
        peer = writer.get_extra_info("peername")[:2]
        self._streams[peer] = writer
        framer = StreamFramer()
        try:
            while data := await reader.read(65536):
                try:
                    messages = framer.feed(data)
                except SipParseError as exc:
                    log.info("sip_tcp_malformed peer=%s error=%s", peer, exc)
                    break
                for message in messages:
                    self.agent.receive(message.to_bytes(), peer, time.monotonic(), "tcp")
                self.flush()
        finally:
            self._streams.pop(peer, None)
            writer.close()

    def flush(self):
        """Send what the user agent wants sent and act on its events."""
        for send in self.agent.take_outbox():
            if send.transport == "tcp":
                writer = self._streams.get(tuple(send.addr))
                if writer is not None:
                    writer.write(send.data)
            else:
                self._udp.sendto(send.data, send.addr)
        for event in self.agent.take_events():
            self._on_event(event)
        self._arm_timer()

    def on_loop(self, method, *args, **kwargs):
        """Call a user agent ``method`` (with ``now``) on the loop, from the media clock thread."""
        def call():
            method(*args, time.monotonic(), **kwargs)
            self.flush()
        self._loop.call_soon_threadsafe(call)

    def _arm_timer(self):
        """Wake at the user agent's next deadline (the loop's clock is time.monotonic)."""
        if self._loop is None:
            return
        deadline = self.agent.next_deadline()
        if self._timer is not None:
            if self._timer.when() == deadline:
                return
            self._timer.cancel()
        self._timer = None if deadline is None else self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self):
        self._timer = None
        self.agent.tick(time.monotonic())
        self.flush()

    def _on_event(self, event):
        if isinstance(event, IncomingCall):
            self._loop.create_task(self._answer(event))
        elif isinstance(event, CallEnded):
            media_call = self.calls.get(event.call_id)
            if media_call is not None:
                media_call.ended_by = media_call.ended_by or ("caller" if event.reason in ("bye", "cancel") else event.reason)
                self._loop.create_task(self._end_call(media_call))
        elif isinstance(event, TransferDone):
            media_call = self.calls.get(event.call_id)
            if media_call is not None:
                media_call.transfer_done(event.ok, event.detail)
        elif isinstance(event, MediaChanged):
            media_call = self.calls.get(event.call_id)
            if media_call is not None:
                media_call.media_changed(event.answer)
        elif isinstance(event, DtmfInfo):
            media_call = self.calls.get(event.call_id)
            if media_call is not None:
                media_call.key(event.digit)
        elif isinstance(event, RegistrationState):
            self.registration = event
        elif isinstance(event, Refused):
            log.info("sip_refused source=%s status=%d reason=%s", event.source, event.status, event.reason)
        elif isinstance(event, CallConfirmed):
            log.info("sip_call_confirmed sip_call_id=%s", event.call_id)

    async def _answer(self, event):
        codec = next(c for c in event.offer.codecs if c.name in self.agent.settings.codecs)
        try:
            rtp_port, rtp, rtcp = await self._open_media()
        except OSError as exc:
            log.warning("sip_no_media_port error=%s", exc)
            self.agent.reject(event.call_id, 503, time.monotonic())
            self.flush()
            return
        try:
            session = await self._loop.run_in_executor(None, self.session_factory, event.caller,
                                                       "pcmu" if codec.name == "PCMU" else "pcma")
        except Exception as exc:
            log.exception("sip_session_failed sip_call_id=%s", event.call_id)
            self._close_media(rtp_port, rtp, rtcp)
            self.agent.reject(event.call_id, 500, time.monotonic(), reason=f"Server Error ({type(exc).__name__})")
            self.flush()
            return
        answer = self.agent.accept(event.call_id, rtp_port, time.monotonic())
        if answer is None:  # cancelled while the session was being made
            self._close_media(rtp_port, rtp, rtcp)
            await self._loop.run_in_executor(None, session.close)
            self.flush()
            return
        media_call = MediaCall(self, event.call_id, session, answer, rtp, rtcp.sock, rtp_port)
        media_call.rtcp_endpoint = rtcp
        rtcp.on_datagram = media_call.on_rtcp
        self.calls[event.call_id] = media_call
        self.peak_calls = max(self.peak_calls, len(self.calls))
        session.start()
        log.info("sip_call_answered sip_call_id=%s call_id=%s codec=%s rtp_port=%d remote=%s", event.call_id,
                 session.call_id, codec.name, rtp_port, answer.remote)
        self.flush()

    async def _open_media(self):
        """An even RTP port (a socket the media clock reads) and the RTCP port above it (read by the loop)."""
        low, high = self.media.rtp_ports
        for port in random.sample(range(low, high, 2), k=min(64, (high - low) // 2)):
            if port in self._ports:
                continue
            try:
                rtp = self._socket(port)
            except OSError:
                continue
            try:
                rtcp = await self._endpoint(port + 1)
            except OSError:
                rtp.close()
                continue
            self._ports.add(port)
            return port, rtp, rtcp
        raise OSError(f"no free RTP port pair in {low}-{high}")

    def _socket(self, port):
        """A non-blocking UDP socket on ``port`` that stamps each datagram's arrival (where the
        kernel can; elsewhere the time it is read stands in)."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.agent.settings.host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.agent.settings.host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass
        return sock

    async def _endpoint(self, port):
        sock = self._socket(port)
        try:
            _, protocol = await self._loop.create_datagram_endpoint(lambda: _DatagramProtocol(lambda d, a: None), sock=sock)
        except OSError:
            sock.close()
            raise
        protocol.sock = sock
        return protocol

    def _close_media(self, port, rtp, rtcp):
        """Close a call's RTP socket (the clock no longer reads it: the call is done or never began)
        and its RTCP through the transport: closing that socket under the loop would leave its
        descriptor registered, and the next call's socket, given the same number, would feed the old call."""
        rtp.close()
        rtcp.transport.close()
        self._ports.discard(port)

    async def _end_call(self, media_call):
        if self.calls.pop(media_call.sip_call_id, None) is None:
            return
        with media_call.lock:
            media_call.state = "done"
        try:
            media_call.rtcp.sendto(media_call._report(bye=True), media_call.remote_rtcp)
        except OSError:
            pass
        self._close_media(media_call.port, media_call.rtp, media_call.rtcp_endpoint)
        session = media_call.session
        record = media_call.media_record()
        session.record_media(record)
        await self._loop.run_in_executor(None, session.close)
        self.finished.append(media_call)
        self.calls_finished += 1
        log.info("sip_call_ended call_id=%s ended_by=%s sent=%d received=%d lost=%d late=%d", session.call_id,
                 record["ended_by"], record["packets_sent"], record["packets_received"], record["packets_lost"],
                 record["late_packets"])

    # ---- the media clock (its own thread) -------------------------------------------------------
    def _media_clock(self):
        """Compute every call's next frame ``LEAD_FRAMES`` ticks before it is due and hand the
        batch to the pacer's thread (room for twice ``max_calls``: calls being hung up still send
        while new ones start): a slow tick here delays no packet. Real-time scheduling where
        allowed, one step below the pacer: a busy machine's other processes cannot hold it up."""
        self.clock_realtime = _realtime_priority(CLOCK_PRIORITY)
        pacer = pacing.Pacer(2 * self.agent.settings.max_calls, priority=SENDER_PRIORITY).start()
        self.sender_realtime = pacer.realtime
        log.info("media_clock realtime=%s sender realtime=%s paced_in_c=%s", self.clock_realtime,
                 self.sender_realtime, pacing.COMPILED)
        due = time.monotonic_ns() + LEAD_FRAMES * FRAME_NS
        while not self._clock_stop.is_set():
            due += FRAME_NS
            start_at = due - LEAD_FRAMES * FRAME_NS
            wait = (start_at - time.monotonic_ns()) / 1e9
            if wait > 0:
                time.sleep(wait)
            elif wait < -10 * FRAME_S:
                self.tick_overruns += 1
                due = time.monotonic_ns() + LEAD_FRAMES * FRAME_NS
            started = time.monotonic()
            self._count_sent(pacer.drain())
            realtime_offset_ns = time.time_ns() - time.monotonic_ns()
            calls, items = [], []
            for media_call in list(self.calls.values()):
                with media_call.lock:
                    if media_call.state == "done":
                        continue
                    try:
                        media_call.receive(realtime_offset_ns)
                        item = media_call.compute(started)
                    except Exception:
                        log.exception("sip_call_tick_failed call_id=%s", media_call.session.call_id)
                        media_call.state, media_call.ended_by = "closing", "error"
                        self.on_loop(self.agent.hang_up, media_call.sip_call_id)
                        continue
                if item is not None:
                    calls.append(media_call)
                    items.append(item)
            if items and not pacer.submit(due, items, calls):
                self.batches_dropped += 1
                for media_call in calls:
                    media_call.sent(None)
            self.ticks += 1
            self.tick_ms.append((time.monotonic() - started) * 1000)
        pacer.stop()
        self._count_sent(pacer.drain())

    def _count_sent(self, batches):
        """Each call's packets in ``batches`` (``Pacer.drain``), counted late or not. A late
        batch keeps how much of its lateness was the pacer's thread waking late (the machine
        kept a real-time thread that had nothing else to do off the CPU)."""
        for due, submitted, woke, sent in batches:
            worst_ns = 0
            for media_call, late_ns in sent:
                media_call.sent(late_ns)
                worst_ns = max(worst_ns, late_ns or 0)
            self.send_late_ms.append(worst_ns / 1e6)
            if worst_ns / 1e6 > LATE_MS:
                self.late_batches.append((due, worst_ns / 1e6, max(0, woke - max(due, submitted)) / 1e6))


CLOCK_PRIORITY = 10
"""SCHED_RR priority of the media clock thread (every call's frame, computed): above every
normal process, far below the kernel's own real-time threads. Its work is a few ms of each
20 ms tick, so it cannot starve the box (and the kernel keeps 5 % of each second for normal
processes whatever real-time threads do)."""
SENDER_PRIORITY = 11
"""SCHED_RR priority of the pacer's thread: above the clock, so a packet due leaves while a tick
is being computed."""


def _realtime_priority(priority):
    """Give the calling thread real-time round-robin scheduling at ``priority`` when allowed;
    False otherwise (it then runs at normal priority and a loaded machine can make packets late)."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except (AttributeError, OSError):
        return False
    return True


def _arrival_ns(ancillary, realtime_offset_ns):
    """A datagram's arrival on ``time.monotonic_ns``'s clock: the kernel's stamp in ``ancillary``
    (``recvmsg``'s control messages) less ``realtime_offset_ns``, or now when there is none."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds * 1_000_000_000 + nanoseconds - realtime_offset_ns
    return time.monotonic_ns()
