"""RTP and RTCP (RFC 3550) and DTMF telephone-events (RFC 4733), sans-I/O.

Bytes in, bytes out, time passed in: the socket adapter owns the clock and the pacing. Packets
are parsed strictly (a malformed one raises RtpError, never anything else), so the adapter can
drop it and carry on.
"""

import random
import struct
from collections import deque
from dataclasses import dataclass

RTP_VERSION = 2
RTP_HEADER = struct.Struct("!BBHII")
RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
"""RFC 3550 appendix A.1: a source is valid after this many packets in sequence."""
NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900) to the Unix epoch (1970)."""

RTCP_HEADER = struct.Struct("!BBH")
RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE = 200, 201, 202, 203
SDES_END, SDES_CNAME = 0, 1
SENDER_INFO = struct.Struct("!IIIII")
REPORT_BLOCK = struct.Struct("!IIIIII")
MAX_REPORT_BLOCKS = 31

DTMF_EVENTS = "0123456789*#ABCD"
"""RFC 4733 events 0-15, the DTMF digits."""
DTMF_EVENT = struct.Struct("!BBH")
DTMF_UPDATE_MS = 50
DTMF_END_COPIES = 3
"""RFC 4733 section 2.5.1.4: the final packet of an event is sent three times."""


class RtpError(ValueError):
    """An RTP, RTCP or telephone-event packet that cannot be read; the message says why."""


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    """Sampling instant of the payload's first sample, in clock-rate units (32-bit, wraps)."""
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()

    def __post_init__(self):
        if not (0 <= self.payload_type <= 127 and 0 <= self.sequence <= 0xFFFF and 0 <= self.timestamp <= 0xFFFFFFFF
                and 0 <= self.ssrc <= 0xFFFFFFFF and len(self.csrcs) <= 15
                and all(0 <= csrc <= 0xFFFFFFFF for csrc in self.csrcs)):
            raise ValueError(f"RTP header field out of range: {self!r}")

    @classmethod
    def parse(cls, data: bytes) -> "RtpPacket":
        """A version-2 RTP packet; the header extension is skipped and padding stripped."""
        if len(data) < RTP_HEADER.size:
            raise RtpError(f"an RTP packet has a 12-byte header; got {len(data)} bytes")
        first, second, sequence, timestamp, ssrc = RTP_HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {first >> 6}; only version 2 is spoken")
        csrc_count = first & 0x0F
        offset = RTP_HEADER.size + 4 * csrc_count
        if len(data) < offset:
            raise RtpError(f"the packet is shorter than its {csrc_count} CSRCs")
        csrcs = struct.unpack_from(f"!{csrc_count}I", data, RTP_HEADER.size)
        if first & 0x10:
            if len(data) < offset + 4:
                raise RtpError("the packet is shorter than its header extension")
            (words,) = struct.unpack_from("!H", data, offset + 2)
            offset += 4 + 4 * words
            if len(data) < offset:
                raise RtpError("the packet is shorter than its header extension")
        end = len(data)
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or padding > end - offset:
                raise RtpError(f"bad padding length {padding}")
            end -= padding
        return cls(payload_type=second & 0x7F, sequence=sequence, timestamp=timestamp, ssrc=ssrc,
                   payload=bytes(data[offset:end]), marker=bool(second & 0x80), csrcs=tuple(csrcs))

    def to_bytes(self) -> bytes:
        header = RTP_HEADER.pack(RTP_VERSION << 6 | len(self.csrcs), self.marker << 7 | self.payload_type,
                                 self.sequence, self.timestamp, self.ssrc)
        return header + struct.pack(f"!{len(self.csrcs)}I", *self.csrcs) + bytes(self.payload)


@dataclass(frozen=True)
class DtmfEvent:
    """One RFC 4733 telephone-event payload."""

    event: int
    end: bool
    volume: int
    """Power level in -dBm0 (0-63)."""
    duration: int
    """Length so far, in timestamp units, counted from the event's RTP timestamp."""

    @classmethod
    def parse(cls, payload: bytes) -> "DtmfEvent":
        if len(payload) < DTMF_EVENT.size:
            raise RtpError(f"a telephone-event payload has 4 bytes; got {len(payload)}")
        event, flags, duration = DTMF_EVENT.unpack_from(payload)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def to_bytes(self) -> bytes:
        return DTMF_EVENT.pack(self.event, self.end << 7 | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        """The DTMF character, or None for the other telephone events (flash, tones)."""
        return DTMF_EVENTS[self.event] if self.event < len(DTMF_EVENTS) else None


class RtpSender:
    """The state of one outgoing RTP stream: SSRC, sequence number, timestamp, counts for SR."""

    def __init__(self, payload_type, *, clock_rate=8000, rng=None):
        """``rng`` (a ``random.Random``) makes the random starting values repeatable in tests."""
        rng = rng or random.SystemRandom()
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.ssrc = rng.getrandbits(32)
        self.sequence = rng.getrandbits(16)
        """The sequence number of the next packet."""
        self.timestamp = rng.getrandbits(32)
        """The RTP timestamp of the next sample to be sent."""
        self.packet_count = 0
        self.octet_count = 0
        """Payload octets sent, headers not counted (RFC 3550 section 6.4.1)."""

    def packet(self, payload: bytes, samples: int, *, marker=False) -> bytes:
        """The next packet carrying ``payload`` (``samples`` long); the stream moves past it."""
        data = self._packet(self.payload_type, self.timestamp, payload, marker)
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        return data

    def skip(self, samples):
        """Let ``samples`` of silence pass unsent; the next packet should carry ``marker=True``."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF

    def dtmf_packets(self, digit, duration_ms, *, payload_type, volume=10) -> list[bytes]:
        """The RFC 4733 packets for one key press, to be sent one every 50 ms in this order.

        All carry the event's start timestamp; the first has the marker bit; each update grows
        the duration; the end packet goes three times. The stream's timestamp moves past the event.
        """
        if len(digit) != 1 or digit.upper() not in DTMF_EVENTS:
            raise ValueError(f"a DTMF digit is one of {DTMF_EVENTS}, not {digit!r}")
        total = duration_ms * self.clock_rate // 1000
        if not 0 < total <= 0xFFFF:
            raise ValueError(f"a DTMF event lasts 1 ms to {0xFFFF * 1000 // self.clock_rate} ms, not {duration_ms}")
        event = DTMF_EVENTS.index(digit.upper())
        step = DTMF_UPDATE_MS * self.clock_rate // 1000
        durations = list(range(step, total, step)) + [total] * DTMF_END_COPIES
        packets = []
        for i, duration in enumerate(durations):
            payload = DtmfEvent(event=event, end=duration == total, volume=volume, duration=duration).to_bytes()
            packets.append(self._packet(payload_type, self.timestamp, payload, i == 0))
        self.timestamp = (self.timestamp + total) & 0xFFFFFFFF
        return packets

    def sender_report(self, unix_seconds: float, *, reports=()) -> "SenderReport":
        """An SR for now; the RTP timestamp given is that of the next sample to be sent."""
        return SenderReport(ssrc=self.ssrc, ntp_timestamp=ntp_timestamp(unix_seconds), rtp_timestamp=self.timestamp,
                            packet_count=self.packet_count & 0xFFFFFFFF, octet_count=self.octet_count & 0xFFFFFFFF,
                            reports=tuple(reports))

    def _packet(self, payload_type, timestamp, payload, marker):
        data = RTP_HEADER.pack(RTP_VERSION << 6, marker << 7 | payload_type, self.sequence, timestamp, self.ssrc) + payload
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.packet_count += 1
        self.octet_count += len(payload)
        return data


@dataclass(frozen=True)
class ReportBlock:
    """How well one source is being received (RFC 3550 section 6.4.1)."""

    ssrc: int
    """The source reported on."""
    fraction_lost: int
    """Packets lost since the previous report, as a fraction of 256."""
    cumulative_lost: int
    """Packets lost since the start (24-bit signed: duplicates can make it negative)."""
    highest_seq: int
    """Highest sequence number received, extended with the count of wrap cycles."""
    jitter: int
    """Interarrival jitter in timestamp units."""
    last_sr: int = 0
    """Middle 32 bits of the NTP timestamp of the source's last SR, 0 if none."""
    delay_since_last_sr: int = 0
    """Since that SR arrived, in 1/65536 s."""


@dataclass(frozen=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    """64-bit NTP time: seconds since 1900 in the top 32 bits, fraction in the bottom 32."""
    rtp_timestamp: int
    """The same instant on the stream's RTP clock."""
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True)
class SourceDescription:
    """An SDES packet, reduced to what Parley reads from it: each source's CNAME."""

    cnames: tuple[tuple[int, str], ...]
    """(ssrc, cname) per chunk that has a CNAME."""


@dataclass(frozen=True)
class Bye:
    ssrcs: tuple[int, ...]
    reason: str | None = None


class ReceiverStats:
    """Reception statistics for one incoming source: RFC 3550 appendix A.1 (sequence validation),
    A.3 (loss) and A.8 (jitter). A new SSRC starts the statistics afresh (a PBX re-bridging)."""

    def __init__(self, clock_rate=8000):
        self.clock_rate = clock_rate
        self.ssrc = None
        """The source being counted, once one is heard."""
        self._reset()

    def _reset(self):
        self.probation = MIN_SEQUENTIAL
        self.max_seq = self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self._received = self._received_prior = self._expected_prior = 0
        self._jitter = 0.0
        self._last_arrival = self._last_timestamp = None
        self._last_sr = self._last_sr_arrival = None

    def update(self, packet: RtpPacket, arrival_s: float) -> bool:
        """Count ``packet``, which arrived at ``arrival_s`` (any steady clock, in seconds). False
        while the source is on probation or for a packet out of any plausible sequence: drop it."""
        if packet.ssrc != self.ssrc:
            self.ssrc = packet.ssrc
            self._reset()
            self.max_seq = (packet.sequence - 1) & 0xFFFF
        if not self._update_seq(packet.sequence):
            return False
        self._received += 1
        self._update_jitter(packet.timestamp, arrival_s)
        return True

    def _init_seq(self, seq):
        self.base_seq = self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self._received = self._received_prior = self._expected_prior = 0

    def _update_seq(self, seq):
        """RFC 3550 appendix A.1, except that the caller counts the packet when this says True."""
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq != self.bad_seq:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
            # Two packets in sequence after a big jump: the source restarted its numbering.
            self._init_seq(seq)
            self._last_arrival = None
        return True

    def _update_jitter(self, timestamp, arrival_s):
        """RFC 3550 appendix A.8, with the timestamp difference taken modulo 2^32."""
        arrival = arrival_s * self.clock_rate
        if self._last_arrival is not None:
            sent = (timestamp - self._last_timestamp) & 0xFFFFFFFF
            if sent >= 1 << 31:
                sent -= 1 << 32
            d = abs((arrival - self._last_arrival) - sent)
            self._jitter += (d - self._jitter) / 16
        self._last_arrival, self._last_timestamp = arrival, timestamp

    @property
    def received(self) -> int:
        return self._received

    @property
    def highest_seq(self) -> int:
        """The highest sequence number seen, extended by the wrap cycles."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.highest_seq - self.base_seq + 1 if self._received else 0

    @property
    def cumulative_lost(self) -> int:
        """Lost since the start, clamped to RTCP's 24-bit signed field."""
        return max(-0x800000, min(0x7FFFFF, self.expected - self._received))

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units."""
        return int(self._jitter)

    @property
    def jitter_ms(self) -> float:
        return self._jitter * 1000 / self.clock_rate

    @property
    def fraction_lost(self) -> int:
        """Loss since the last report block, in 1/256 (0 when packets were duplicated instead)."""
        expected = self.expected - self._expected_prior
        lost = expected - (self._received - self._received_prior)
        return 0 if expected <= 0 or lost <= 0 else min(255, (lost << 8) // expected)

    def sender_report_received(self, report: SenderReport, arrival_s: float):
        """Remember the source's SR so the next report block can give LSR and DLSR."""
        self._last_sr = (report.ntp_timestamp >> 16) & 0xFFFFFFFF
        self._last_sr_arrival = arrival_s

    def report_block(self, ssrc=None, *, now_s=None) -> ReportBlock:
        """The report block on the source (``ssrc`` defaults to the one heard); starts a new
        interval for ``fraction_lost``. ``now_s`` (same clock as arrivals) gives DLSR."""
        last_sr = delay = 0
        if self._last_sr is not None:
            last_sr = self._last_sr
            if now_s is not None:
                delay = max(0, min(0xFFFFFFFF, int((now_s - self._last_sr_arrival) * 65536)))
        if ssrc is None:
            ssrc = self.ssrc or 0
        block = ReportBlock(ssrc=ssrc, fraction_lost=self.fraction_lost,
                            cumulative_lost=self.cumulative_lost, highest_seq=self.highest_seq & 0xFFFFFFFF,
                            jitter=min(self.jitter, 0xFFFFFFFF), last_sr=last_sr, delay_since_last_sr=delay)
        self._expected_prior, self._received_prior = self.expected, self._received
        return block


class DtmfReceiver:
    """Turns incoming telephone-event packets into digits, each key press once.

    An event is keyed by (SSRC, RTP timestamp): its first packet that arrives (start, update or
    end) yields the digit, and the rest of the event, end retransmissions included, yields nothing.
    """

    RECENT_EVENTS = 32

    def __init__(self, payload_type: int | None = None):
        """With ``payload_type``, packets of any other payload type are ignored."""
        self.payload_type = payload_type
        self._seen = deque(maxlen=self.RECENT_EVENTS)

    def feed(self, packet: RtpPacket) -> str | None:
        if self.payload_type is not None and packet.payload_type != self.payload_type:
            return None
        event = DtmfEvent.parse(packet.payload)
        key = (packet.ssrc, packet.timestamp)
        if event.digit is None or key in self._seen:
            return None
        self._seen.append(key)
        return event.digit


def ntp_timestamp(unix_seconds: float) -> int:
    """Unix time as a 64-bit NTP timestamp (32.32 fixed point since 1900)."""
    whole = int(unix_seconds // 1)
    fraction = int((unix_seconds - whole) * (1 << 32))
    return ((whole + NTP_UNIX_OFFSET) << 32 | fraction) & 0xFFFFFFFFFFFFFFFF


def build_rtcp(report: SenderReport | ReceiverReport, *, cname: str, bye: Bye | None = None) -> bytes:
    """A compound RTCP packet: the SR or RR, an SDES with our CNAME, then the BYE if leaving."""
    if len(report.reports) > MAX_REPORT_BLOCKS:
        raise ValueError(f"an SR or RR carries at most {MAX_REPORT_BLOCKS} report blocks")
    blocks = b"".join(_report_block_bytes(block) for block in report.reports)
    if isinstance(report, SenderReport):
        body = struct.pack("!I", report.ssrc) + SENDER_INFO.pack(
            report.ntp_timestamp >> 32, report.ntp_timestamp & 0xFFFFFFFF, report.rtp_timestamp,
            report.packet_count, report.octet_count) + blocks
        packets = [_rtcp_packet(RTCP_SR, len(report.reports), body)]
    else:
        packets = [_rtcp_packet(RTCP_RR, len(report.reports), struct.pack("!I", report.ssrc) + blocks)]
    name = cname.encode("utf-8")
    if len(name) > 255:
        raise ValueError("a CNAME is at most 255 bytes")
    chunk = struct.pack("!IBB", report.ssrc, SDES_CNAME, len(name)) + name + b"\0"
    packets.append(_rtcp_packet(RTCP_SDES, 1, _pad(chunk)))
    if bye is not None:
        if len(bye.ssrcs) > MAX_REPORT_BLOCKS:
            raise ValueError(f"a BYE names at most {MAX_REPORT_BLOCKS} sources")
        body = struct.pack(f"!{len(bye.ssrcs)}I", *bye.ssrcs)
        if bye.reason is not None:
            reason = bye.reason.encode("utf-8")[:255]
            body += _pad(bytes([len(reason)]) + reason)
        packets.append(_rtcp_packet(RTCP_BYE, len(bye.ssrcs), body))
    return b"".join(packets)


def parse_rtcp(data: bytes) -> list:
    """The packets of a compound RTCP packet: SenderReport, ReceiverReport, SourceDescription
    and Bye; other types (APP, feedback, XR) are skipped."""
    packets, offset = [], 0
    if len(data) < RTCP_HEADER.size:
        raise RtpError(f"an RTCP packet has a 4-byte header; got {len(data)} bytes")
    while offset < len(data):
        if len(data) - offset < RTCP_HEADER.size:
            raise RtpError(f"{len(data) - offset} stray bytes after the last RTCP packet")
        first, packet_type, words = RTCP_HEADER.unpack_from(data, offset)
        if first >> 6 != RTP_VERSION:
            raise RtpError(f"RTCP version {first >> 6}; only version 2 is spoken")
        end = offset + 4 * (words + 1)
        if end > len(data):
            raise RtpError(f"RTCP packet type {packet_type} runs past the end of the datagram")
        body_end = end
        if first & 0x20:
            padding = data[end - 1]
            if padding == 0 or padding > end - offset - RTCP_HEADER.size:
                raise RtpError(f"bad RTCP padding length {padding}")
            body_end -= padding
        body = bytes(data[offset + RTCP_HEADER.size:body_end])
        count = first & 0x1F
        parsed = _RTCP_PARSERS.get(packet_type)
        if parsed is not None:
            packets.append(parsed(body, count))
        offset = end
    return packets


def _rtcp_packet(packet_type, count, body):
    return RTCP_HEADER.pack(RTP_VERSION << 6 | count, packet_type, len(body) // 4) + body


def _pad(data):
    """``data`` padded with zero bytes to a multiple of four."""
    return data + b"\0" * (-len(data) % 4)


def _report_block_bytes(block):
    return REPORT_BLOCK.pack(block.ssrc, block.fraction_lost << 24 | block.cumulative_lost & 0xFFFFFF,
                             block.highest_seq, block.jitter, block.last_sr, block.delay_since_last_sr)


def _report_blocks(body, offset, count):
    if len(body) < offset + count * REPORT_BLOCK.size:
        raise RtpError(f"the RTCP report is shorter than its {count} report blocks")
    blocks = []
    for i in range(count):
        ssrc, lost, highest, jitter, last_sr, delay = REPORT_BLOCK.unpack_from(body, offset + i * REPORT_BLOCK.size)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 1 << 24
        blocks.append(ReportBlock(ssrc=ssrc, fraction_lost=lost >> 24, cumulative_lost=cumulative,
                                  highest_seq=highest, jitter=jitter, last_sr=last_sr, delay_since_last_sr=delay))
    return tuple(blocks)


def _parse_sender_report(body, count):
    if len(body) < 4 + SENDER_INFO.size:
        raise RtpError("an RTCP SR is shorter than its sender info")
    (ssrc,) = struct.unpack_from("!I", body)
    seconds, fraction, rtp_timestamp, packet_count, octet_count = SENDER_INFO.unpack_from(body, 4)
    return SenderReport(ssrc=ssrc, ntp_timestamp=seconds << 32 | fraction, rtp_timestamp=rtp_timestamp,
                        packet_count=packet_count, octet_count=octet_count,
                        reports=_report_blocks(body, 4 + SENDER_INFO.size, count))


def _parse_receiver_report(body, count):
    if len(body) < 4:
        raise RtpError("an RTCP RR has no SSRC")
    (ssrc,) = struct.unpack_from("!I", body)
    return ReceiverReport(ssrc=ssrc, reports=_report_blocks(body, 4, count))


def _parse_source_description(body, count):
    cnames, offset = [], 0
    for _ in range(count):
        if len(body) < offset + 4:
            raise RtpError("an RTCP SDES is shorter than its chunks")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        while True:
            if offset >= len(body):
                raise RtpError("an RTCP SDES chunk has no end")
            item = body[offset]
            if item == SDES_END:
                offset += 4 - offset % 4  # the null octet and the padding to the next 32-bit boundary
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtpError("an RTCP SDES item runs past its packet")
            text = body[offset + 2:offset + 2 + body[offset + 1]]
            if item == SDES_CNAME:
                cnames.append((ssrc, text.decode("utf-8", errors="replace")))
            offset += 2 + len(text)
    return SourceDescription(cnames=tuple(cnames))


def _parse_bye(body, count):
    if len(body) < 4 * count:
        raise RtpError(f"an RTCP BYE is shorter than its {count} sources")
    ssrcs = struct.unpack_from(f"!{count}I", body)
    reason = None
    if len(body) > 4 * count:
        length = body[4 * count]
        if 4 * count + 1 + length > len(body):
            raise RtpError("an RTCP BYE reason runs past its packet")
        reason = body[4 * count + 1:4 * count + 1 + length].decode("utf-8", errors="replace")
    return Bye(ssrcs=tuple(ssrcs), reason=reason)


_RTCP_PARSERS = {RTCP_SR: _parse_sender_report, RTCP_RR: _parse_receiver_report,
                 RTCP_SDES: _parse_source_description, RTCP_BYE: _parse_bye}
