"""SIPp as the caller in tests of Parley's SIP user agent (no tests in this module).

What it gives a test: RTP captures for SIPp's ``play_pcap_audio`` (caller speech, RFC 4733 digits),
``run_sipp`` / ``start_sipp`` to run a scenario from ``tests/sipp/`` bounded in time, an
``RtpSniffer`` that sees the RTP the agent sends back, and ``send_malformed_burst`` for the
garbage SIPp cannot send and judge. Everything stays on 127.0.0.1.

Two facts about SIPp 3.6 shape it. It plays a pcap through a raw socket, so a scenario with media
needs root or CAP_NET_RAW (``can_play_pcap``). And it cannot assert on RTP it receives: the port it
advertises is bound and drained by SIPp itself, and the only count (``RTP IN``) is a rate on its
screen. So the sniffer reads copies of those datagrams from a raw socket, which needs the same
privilege as the playing. Others: ``-set`` reaches only variables a scenario declares as
``<Global>`` and gives them as text (``todouble`` turns one into a pause); a second
``play_pcap_audio`` cuts the first short, so scenarios pause for a pcap's ``duration_ms``; SIPp
answers nothing to garbage and cannot judge replies to it, hence the Python burst.

    media_port = free_udp_port(pair=True)
    with RtpSniffer([media_port]) as heard:
        result = run_sipp("uac_call.xml", ("127.0.0.1", sip_port), media_port=media_port,
                          variables={"audio_ms": audio.duration_ms, "dtmf_ms": digits.duration_ms,
                                     "listen_ms": 3000},
                          files={"caller_audio.pcap": audio.path, "caller_dtmf.pcap": digits.path})
    assert result.ok, result.explain()
    [agent] = heard.streams().values()
"""

import csv
import dataclasses
import functools
import math
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from parley.core import codecs

SCENARIOS = Path(__file__).parent / "sipp"
"""The scenario files; ``run_sipp("uac_call.xml")`` finds them here."""

LOOPBACK = "127.0.0.1"
SAMPLE_RATE = 8000

# --------------------------------------------------------------------------------------------
# pcap files of RTP (classic libpcap, Ethernet / IPv4 / UDP / RTP)
# --------------------------------------------------------------------------------------------

_PCAP_MAGIC = 0xA1B2C3D4
_LINKTYPE_ETHERNET = 1
_ETH_HEADER = struct.Struct("!6s6sH")
_IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
_UDP_HEADER = struct.Struct("!HHHH")
_RTP_HEADER = struct.Struct("!BBHII")
_SRC_MAC = bytes.fromhex("020000000001")
_DST_MAC = bytes.fromhex("020000000002")

DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
"""RFC 4733 event codes of the DTMF digits."""


@dataclasses.dataclass(frozen=True)
class RtpPacket:
    """One RTP packet: what a pcap holds at a time, or what the sniffer saw arrive."""

    time_s: float
    """Seconds: from the start of the capture (written), or ``time.monotonic()`` (sniffed)."""
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    src: tuple = (LOOPBACK, 0)
    """Source (ip, port) of the datagram."""
    dst: tuple = (LOOPBACK, 0)
    """Destination (ip, port) of the datagram."""

    def to_bytes(self):
        first = 0x80  # version 2, no padding, no extension, no CSRC
        second = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        return _RTP_HEADER.pack(first, second, self.sequence & 0xFFFF,
                                self.timestamp & 0xFFFFFFFF, self.ssrc & 0xFFFFFFFF) + self.payload


@dataclasses.dataclass(frozen=True)
class RtpPcap:
    """What ``write_rtp_pcap`` / ``dtmf_pcap`` wrote, and where a stream that follows it picks up."""

    path: Path
    packets: int
    duration_ms: int
    """From the first packet to one packetisation interval past the last: how long SIPp plays it."""
    ssrc: int
    next_sequence: int
    next_timestamp: int


def internet_checksum(data):
    """The ones' complement sum of RFC 1071, as IPv4 and UDP headers carry it."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(packet, ip_id):
    src_ip, src_port = packet.src
    dst_ip, dst_port = packet.dst
    rtp = packet.to_bytes()
    udp_length = _UDP_HEADER.size + len(rtp)
    src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_length)
    udp_sum = internet_checksum(pseudo + _UDP_HEADER.pack(src_port, dst_port, udp_length, 0) + rtp) or 0xFFFF
    udp = _UDP_HEADER.pack(src_port, dst_port, udp_length, udp_sum)
    total_length = _IPV4_HEADER.size + udp_length
    header = _IPV4_HEADER.pack(0x45, 0, total_length, ip_id, 0x4000, 64, socket.IPPROTO_UDP, 0, src, dst)
    header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
    return _ETH_HEADER.pack(_DST_MAC, _SRC_MAC, 0x0800) + header + udp + rtp


def write_pcap(path, packets):
    """Write RTP packets as a classic libpcap file that SIPp replays with their timing."""
    path = Path(path)
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", _PCAP_MAGIC, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET))
        for ip_id, packet in enumerate(packets, start=1):
            frame = _frame(packet, ip_id & 0xFFFF)
            micros = round(packet.time_s * 1_000_000)
            out.write(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)))
            out.write(frame)
    return path


def write_rtp_pcap(path, payloads, *, payload_type, ssrc, start_seq, start_ts, samples_per_packet=160,
                   src=(LOOPBACK, 6000), dst=(LOOPBACK, 7000), ptime_ms=20, marker_first=True):
    """One packet per payload, ``ptime_ms`` apart; a capture of audio for ``play_pcap_audio``.

    SIPp rewrites the ports (source: its media port, destination: the port of the peer's SDP) and
    the UDP checksum; sequence numbers, timestamps, SSRC and timing are sent as written here.
    """
    packets = [RtpPacket(time_s=i * ptime_ms / 1000, payload_type=payload_type,
                         marker=marker_first and i == 0, sequence=(start_seq + i) & 0xFFFF,
                         timestamp=(start_ts + i * samples_per_packet) & 0xFFFFFFFF, ssrc=ssrc,
                         payload=bytes(payload), src=src, dst=dst)
               for i, payload in enumerate(payloads)]
    write_pcap(path, packets)
    return RtpPcap(Path(path), len(packets), len(packets) * ptime_ms, ssrc,
                   (start_seq + len(packets)) & 0xFFFF,
                   (start_ts + len(packets) * samples_per_packet) & 0xFFFFFFFF)


def ulaw_payloads(signal, *, samples_per_packet=160):
    """G.711 µ-law payloads of an 8 kHz signal (float in [-1, 1] or int16), zero-padded to whole
    packets."""
    signal = np.asarray(signal)
    if signal.dtype.kind == "f":
        signal = codecs.float32_to_pcm16(np.clip(signal, -1.0, 1.0).astype(np.float32))
    pcm = np.asarray(signal, dtype=np.int16)
    padded = np.zeros(-(-len(pcm) // samples_per_packet) * samples_per_packet, dtype=np.int16)
    padded[:len(pcm)] = pcm
    return [codecs.ulaw_encode(padded[i:i + samples_per_packet])
            for i in range(0, len(padded), samples_per_packet)]


def tone(frequency_hz, seconds, *, level=0.3):
    """A sine at 8 kHz: stand-in caller speech that survives G.711 and is easy to find again."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (level * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def dtmf_pcap(path, digits, payload_type=101, *, ssrc, start_seq, start_ts, tone_ms=200, gap_ms=100,
              update_ms=50, end_repeats=3, volume=10, ptime_ms=20,
              src=(LOOPBACK, 6000), dst=(LOOPBACK, 7000)):
    """RFC 4733 telephone-events for ``digits``: per digit a first packet with the marker, an
    update every ``update_ms`` with the duration so far, then the end bit sent ``end_repeats``
    times ``ptime_ms`` apart; the next digit starts ``gap_ms`` after the tone ends.

    Every packet of one digit carries the digit's start timestamp, as the RFC asks; each has a
    sequence number of its own. Pass the audio's ``next_sequence`` / ``next_timestamp`` and SSRC
    to continue its stream.
    """
    unknown = [d for d in digits if d.upper() not in DTMF_EVENTS]
    if unknown:
        raise ValueError(f"no RFC 4733 event for {unknown!r}: digits are 0-9, *, # and A-D")
    if tone_ms <= 0 or update_ms <= 0 or end_repeats < 1:
        raise ValueError(f"tone_ms={tone_ms}, update_ms={update_ms}, end_repeats={end_repeats}: "
                         "all must be positive")
    packets, sequence = [], start_seq
    digit_start_ms, last_ms = 0, 0
    rate = SAMPLE_RATE // 1000
    for digit in digits:
        event = DTMF_EVENTS[digit.upper()]
        timestamp = (start_ts + digit_start_ms * rate) & 0xFFFFFFFF
        schedule = [(t, min(t + update_ms, tone_ms), False) for t in range(0, tone_ms, update_ms)]
        schedule += [(tone_ms + i * ptime_ms, tone_ms, True) for i in range(end_repeats)]
        for offset_ms, duration_ms, end in schedule:
            body = struct.pack("!BBH", event, (0x80 if end else 0) | (volume & 0x3F), duration_ms * rate)
            packets.append(RtpPacket(time_s=(digit_start_ms + offset_ms) / 1000, payload_type=payload_type,
                                     marker=offset_ms == 0, sequence=sequence & 0xFFFF,
                                     timestamp=timestamp, ssrc=ssrc, payload=body, src=src, dst=dst))
            sequence += 1
            last_ms = digit_start_ms + offset_ms
        digit_start_ms += tone_ms + gap_ms
    write_pcap(path, packets)
    return RtpPcap(Path(path), len(packets), last_ms + ptime_ms, ssrc, sequence & 0xFFFF,
                   (start_ts + digit_start_ms * rate) & 0xFFFFFFFF)


def read_pcap(path):
    """The RTP packets of a pcap written by ``write_pcap`` (Ethernet / IPv4 / UDP only), times
    from the first packet; raises ``ValueError`` on a length or checksum that does not add up."""
    data = Path(path).read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data, 0)
    if magic != _PCAP_MAGIC or linktype != _LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: not a little-endian Ethernet pcap (magic {magic:#x}, link {linktype})")
    packets, offset = [], 24
    while offset < len(data):
        seconds, micros, included, original = struct.unpack_from("<IIII", data, offset)
        offset += 16
        frame = data[offset:offset + included]
        offset += included
        if included != original or len(frame) != included:
            raise ValueError(f"{path}: truncated record at byte {offset}")
        packets.append(_parse_ipv4_udp_rtp(frame[_ETH_HEADER.size:], seconds + micros / 1e6))
    first = packets[0].time_s if packets else 0.0
    return [dataclasses.replace(p, time_s=p.time_s - first) for p in packets]


def _parse_ipv4_udp_rtp(datagram, time_s):
    version_ihl, _, total_length = struct.unpack_from("!BBH", datagram, 0)
    header_length = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or total_length != len(datagram):
        raise ValueError(f"IPv4 total length {total_length} for {len(datagram)} bytes")
    if internet_checksum(datagram[:header_length]) != 0:
        raise ValueError("bad IPv4 header checksum")
    src, dst = socket.inet_ntoa(datagram[12:16]), socket.inet_ntoa(datagram[16:20])
    udp = datagram[header_length:]
    src_port, dst_port, udp_length, udp_sum = _UDP_HEADER.unpack_from(udp, 0)
    if udp_length != len(udp):
        raise ValueError(f"UDP length {udp_length} for {len(udp)} bytes")
    pseudo = datagram[12:20] + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_length)
    if udp_sum and internet_checksum(pseudo + udp) != 0:
        raise ValueError("bad UDP checksum")
    packet = parse_rtp(udp[_UDP_HEADER.size:], time_s)
    if packet is None:
        raise ValueError("not RTP version 2")
    return dataclasses.replace(packet, src=(src, src_port), dst=(dst, dst_port))


def parse_rtp(data, time_s=0.0):
    """An ``RtpPacket`` from the bytes of a UDP payload, or None if it is not RTP version 2."""
    if len(data) < _RTP_HEADER.size or data[0] >> 6 != 2:
        return None
    first, second, sequence, timestamp, ssrc = _RTP_HEADER.unpack_from(data, 0)
    start = _RTP_HEADER.size + 4 * (first & 0x0F)
    end = len(data) - (data[-1] if first & 0x20 and data[-1] else 0)
    if first & 0x10 and len(data) >= start + 4:
        start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
    return RtpPacket(time_s, second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc, data[start:end])


def telephone_events(packets, payload_type=101):
    """The digits of the RFC 4733 events among ``packets``, each once however often its end
    packet was repeated: what a receiver of the DTMF pcap should report."""
    codes = {code: digit for digit, code in DTMF_EVENTS.items()}
    digits, ended = [], set()
    for packet in packets:
        if packet.payload_type != payload_type or len(packet.payload) < 4:
            continue
        event, flags = packet.payload[0], packet.payload[1]
        key = (packet.ssrc, packet.timestamp)
        if flags & 0x80 and key not in ended and event in codes:
            ended.add(key)
            digits.append(codes[event])
    return "".join(digits)


# --------------------------------------------------------------------------------------------
# Ports and privileges
# --------------------------------------------------------------------------------------------

def free_udp_port(*, pair=False):
    """A UDP port free on 127.0.0.1 now; with ``pair``, an even one whose +2 is free too (SIPp
    binds its media port and media port + 2)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        if not pair:
            return port
        port &= ~1
        if port + 2 < 65536 and all(_udp_port_free(p) for p in (port, port + 1, port + 2, port + 3)):
            return port
    raise RuntimeError("no free UDP port pair on 127.0.0.1 after 200 tries")


def _udp_port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


@functools.cache
def sipp_available():
    """True when a SIPp 3.x binary with pcap play is on the PATH (for skip markers)."""
    binary = shutil.which("sipp")
    if not binary:
        return False
    try:
        banner = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return bool(re.search(r"SIPp v3\.\d+", banner)) and "PCAP" in banner


def can_play_pcap():
    """True when this process may open a raw UDP socket: SIPp needs one to play a pcap, and
    ``RtpSniffer`` to see RTP (root or CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).close()
    except OSError:
        return False
    return True


def udp_port_bound(port, host=LOOPBACK):
    """True when some socket of this machine is bound to UDP ``host:port`` (from /proc/net/udp)."""
    # the kernel prints each address as the in_addr read as a host-order integer
    wanted = {f"{struct.unpack('=I', socket.inet_aton(h))[0]:08X}:{port:04X}" for h in (host, "0.0.0.0")}
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] in wanted for line in lines if len(line.split()) > 1)


# --------------------------------------------------------------------------------------------
# Running SIPp
# --------------------------------------------------------------------------------------------

class SippScenarioError(ValueError):
    """A scenario was asked for with variables it does not declare, or without ones it needs."""


@dataclasses.dataclass(frozen=True)
class SippResult:
    """How one SIPp run ended; ``run_dir`` keeps its logs while the caller's directory lives."""

    returncode: int
    """SIPp's: 0 all calls succeeded, 1 some failed, 97 internal exit, 99 no call processed,
    255 a fatal error (also its -timeout, which the harness sets with -timeout_error), 254 a port
    it could not bind; -9 when the harness had to kill it."""
    successful: int
    failed: int
    stdout: str
    stderr: str
    stat_csv: tuple
    """The rows of ``-trace_stat`` as dicts (column name -> text); the last is the final count."""
    error_log: str
    """``-trace_err``: the unexpected messages and why each call failed."""
    screen: str
    """``-trace_screen``: the final statistics screen."""
    run_dir: Path
    """Where its logs are: ``work_dir``, or a temporary directory kept only when the run was not ok."""
    timed_out: bool = False
    """It ran into its -timeout (and ended itself), or was killed past it."""
    killed: bool = False
    """It outlived its -timeout by ``SippProcess.GRACE_S`` or ignored SIGUSR1, and was killed."""

    @property
    def ok(self):
        return self.returncode == 0 and self.failed == 0 and self.successful > 0 and not self.timed_out

    def explain(self):
        """A few lines to put in an assertion message."""
        tail = "\n".join((self.error_log or self.stderr).strip().splitlines()[-25:])
        return (f"sipp rc={self.returncode} successful={self.successful} failed={self.failed} "
                f"timed_out={self.timed_out} killed={self.killed} logs={self.run_dir}\n{tail}")


def scenario_path(scenario):
    path = Path(scenario)
    return path if path.is_absolute() or path.exists() else SCENARIOS / path


def scenario_globals(scenario):
    """The names a scenario declares in ``<Global variables="...">``: what ``-set`` may set."""
    text = scenario_path(scenario).read_text(encoding="iso-8859-1")
    names = []
    for match in re.finditer(r'<Global\s+variables="([^"]*)"', text):
        names += [n.strip() for n in match.group(1).split(",") if n.strip()]
    return names


class SippProcess:
    """One SIPp running in the background, bounded in time; ``wait()`` for its ``SippResult``.
    A context manager, so it never outlives the test that started it.

    A child process rather than SIPp's own ``-bg``: ``-bg`` forks and its parent returns at
    once, so the exit status (SIPp's verdict) would be lost and the daemon left to chase.
    """

    GRACE_S = 5.0

    def __init__(self, args, run_dir, timeout_s, owns_dir, *, local_port, media_port):
        self.args = args
        self.local_port = local_port
        """Its SIP port on 127.0.0.1."""
        self.media_port = media_port
        """The port its SDP advertises; it also binds media_port + 2."""
        self.run_dir = run_dir
        self.timeout_s = timeout_s
        self._owns_dir = owns_dir
        self._stdout = (run_dir / "sipp.stdout").open("wb")
        self._stderr = (run_dir / "sipp.stderr").open("wb")
        self.process = subprocess.Popen(args, cwd=run_dir, stdin=subprocess.DEVNULL, stdout=self._stdout,
                                        stderr=self._stderr, start_new_session=True)
        self._deadline = time.monotonic() + timeout_s + self.GRACE_S
        self._killed = False
        self._result = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def wait_bound(self, port, timeout_s=5.0):
        """Block until SIPp has bound its SIP port (or it died, or ``timeout_s`` passed)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and self.process.poll() is None:
            if udp_port_bound(port):
                return True
            time.sleep(0.02)
        return False

    def wait(self):
        """The result, once SIPp exits on its own or is killed ``GRACE_S`` past its timeout."""
        if self._result is not None:
            return self._result
        try:
            self.process.wait(timeout=max(0.0, self._deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._kill()
        self._result = self._collect()
        return self._result

    def stop(self):
        """End SIPp now if it still runs (SIGUSR1 lets it finish calls; then kill) and collect."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)
            try:
                self.process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self._kill()
        return self.wait()

    def _kill(self):
        self._killed = True
        self.process.kill()
        try:
            self.process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            pass

    def _collect(self):
        self._stdout.close()
        self._stderr.close()
        rows = ()
        stat_file = self.run_dir / "stat.csv"
        if stat_file.exists():
            with stat_file.open(newline="", encoding="utf-8", errors="replace") as f:
                rows = tuple(csv.DictReader(f, delimiter=";"))
        last = rows[-1] if rows else {}
        stderr = _read_tail(self.run_dir / "sipp.stderr")
        error_log = _read_tail(self.run_dir / "errors.log")
        result = SippResult(
            returncode=self.process.returncode,
            successful=_count(last, "SuccessfulCall(C)"),
            failed=_count(last, "FailedCall(C)"),
            stdout=_read_tail(self.run_dir / "sipp.stdout"),
            stderr=stderr,
            stat_csv=rows,
            error_log=error_log,
            screen=_read_tail(self.run_dir / "screen.log"),
            run_dir=self.run_dir,
            timed_out=self._killed or " timed out after " in stderr + error_log,
            killed=self._killed,
        )
        if self._owns_dir and result.ok:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return result


def _count(row, column):
    try:
        return int(row.get(column, "0") or 0)
    except ValueError:
        return 0


def _read_tail(path, limit=200_000):
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def start_sipp(scenario, target=("127.0.0.1", 5080), *, local_port=None, media_port=None, calls=1,
               rate=None, max_concurrent=None, timeout_s=60, variables=None, files=None, work_dir=None,
               extra=()):
    """Start SIPp on ``scenario`` (a name in ``tests/sipp/`` or a path) in the background.

    ``target`` None makes it a server (UAS); ``variables`` become ``-set name value`` and must be
    exactly the scenario's ``<Global>`` names; ``files`` (name -> path) are linked into its run
    directory, which is also its working directory, so ``play_pcap_audio="name"`` finds them.
    Logs (stat.csv, errors.log, screen.log) go to ``work_dir``, or to a temporary directory removed
    once a result is collected that is ok. SIPp's own -timeout is ``timeout_s``; the harness kills
    it ``SippProcess.GRACE_S`` later if it is still there.
    """
    if target is not None and target[0] != LOOPBACK:
        raise ValueError(f"SIPp runs against {LOOPBACK} only, not {target[0]}")
    path = scenario_path(scenario)
    if not path.exists():
        raise FileNotFoundError(f"no SIPp scenario {path}")
    variables = dict(variables or {})
    declared = scenario_globals(path)
    missing = sorted(set(declared) - set(variables))
    unknown = sorted(set(variables) - set(declared))
    if missing or unknown:
        raise SippScenarioError(f"{path.name} declares variables {declared}: missing {missing}, "
                                f"unknown {unknown}; pass variables={{name: value}} for each declared one")
    binary = shutil.which("sipp")
    if binary is None:
        raise FileNotFoundError("sipp is not on the PATH: install it (Debian: apt-get install sip-tester)")
    owns_dir = work_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="sipp-")) if owns_dir else Path(work_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # SIPp looks for a pcap next to the scenario first: a copy of it beside the linked files
    # keeps its logs free of a "falling back to the working directory" warning per file.
    copy = run_dir / path.name
    if copy.resolve() != path.resolve():
        shutil.copyfile(path, copy)
    for name, source in (files or {}).items():
        link = run_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(source).resolve())

    local_port = local_port or free_udp_port()
    media_port = media_port or free_udp_port(pair=True)
    args = [binary, "-sf", copy.name]
    if target is not None:
        args.append(f"{target[0]}:{target[1]}")
    args += ["-i", LOOPBACK, "-p", str(local_port), "-mi", LOOPBACK, "-mp", str(media_port),
             "-ci", LOOPBACK, "-cp", str(free_udp_port()), "-t", "u1",
             "-m", str(calls), "-nostdin", "-timeout", f"{max(1, math.ceil(timeout_s))}s", "-timeout_error",
             "-trace_stat", "-stf", "stat.csv", "-fd", "1",
             "-trace_err", "-error_file", "errors.log",
             "-trace_screen", "-screen_file", "screen.log"]
    if rate is not None:
        args += ["-r", str(rate)]
    if max_concurrent is not None:
        args += ["-l", str(max_concurrent)]
    for name, value in variables.items():
        args += ["-set", name, str(value)]
    args += [str(a) for a in extra]
    return SippProcess(args, run_dir, timeout_s, owns_dir, local_port=local_port, media_port=media_port)


def run_sipp(scenario, target=("127.0.0.1", 5080), **options):
    """Run a scenario to the end (at most ``timeout_s`` plus a grace) and return its result;
    the keywords are ``start_sipp``'s."""
    with start_sipp(scenario, target, **options) as sipp:
        return sipp.wait()


# --------------------------------------------------------------------------------------------
# What the agent sends back: sniffed RTP
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RtpStreamSummary:
    """One SSRC as it arrived."""

    ssrc: int
    packets: int
    payload_types: frozenset
    lost: int
    """Sequence numbers missing between the first and the last packet."""
    duration_s: float
    """Arrival of the last packet minus the first."""
    src: tuple
    dst: tuple


class RtpSniffer:
    """Copies of the UDP datagrams that reach ``ports`` on 127.0.0.1, from a raw socket, kept as
    ``RtpPacket`` s: SIPp owns the port its SDP advertises and cannot count what arrives there, so
    this is how a test sees the agent's audio. Needs root or CAP_NET_RAW (``can_play_pcap``).
    """

    def __init__(self, ports, *, max_packets=200_000, max_seconds=900.0):
        self.ports = frozenset(ports)
        self.max_packets = max_packets
        self.max_seconds = max_seconds
        self.packets = []
        self._stop = threading.Event()
        self._socket = None
        self._thread = None

    def __enter__(self):
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._socket.bind((LOOPBACK, 0))
        self._thread = threading.Thread(target=self._read, name="rtp-sniffer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._socket.close()

    def _read(self):
        end = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and len(self.packets) < self.max_packets and time.monotonic() < end:
            ready, _, _ = select.select([self._socket], [], [], 0.05)
            if not ready:
                continue
            datagram = self._socket.recv(65535)
            arrival = time.monotonic()
            header_length = (datagram[0] & 0x0F) * 4
            if len(datagram) < header_length + _UDP_HEADER.size:
                continue
            src_port, dst_port, _, _ = _UDP_HEADER.unpack_from(datagram, header_length)
            if dst_port not in self.ports:
                continue
            packet = parse_rtp(datagram[header_length + _UDP_HEADER.size:], arrival)
            if packet is not None:
                self.packets.append(dataclasses.replace(
                    packet, src=(socket.inet_ntoa(datagram[12:16]), src_port),
                    dst=(socket.inet_ntoa(datagram[16:20]), dst_port)))

    def wait_for(self, count, timeout_s):
        """Wait (bounded) until ``count`` packets arrived; True if they did."""
        end = time.monotonic() + timeout_s
        while len(self.packets) < count and time.monotonic() < end:
            time.sleep(0.02)
        return len(self.packets) >= count

    def streams(self):
        """The packets grouped by (source address, SSRC), summarised: one entry per call even when
        a peer reuses an SSRC across calls."""
        by_stream = {}
        for packet in list(self.packets):
            by_stream.setdefault((packet.src, packet.ssrc), []).append(packet)
        summaries = {}
        for (src, ssrc), packets in by_stream.items():
            extended = _unwrap([p.sequence for p in packets])
            expected = max(extended) - min(extended) + 1
            summaries[(src, ssrc)] = RtpStreamSummary(
                ssrc=ssrc, packets=len(packets), payload_types=frozenset(p.payload_type for p in packets),
                lost=max(0, expected - len(set(extended))), duration_s=packets[-1].time_s - packets[0].time_s,
                src=packets[0].src, dst=packets[0].dst)
        return summaries

    def audio(self, payload_type=0):
        """The payloads of ``payload_type`` decoded from G.711 (0 µ-law, 8 A-law) to int16 in
        sequence order, per stream as ``streams()`` keys them: the agent's voice, for level or
        speech checks."""
        decode = {0: codecs.ulaw_decode, 8: codecs.alaw_decode}[payload_type]
        by_stream = {}
        for packet in list(self.packets):
            if packet.payload_type == payload_type:
                by_stream.setdefault((packet.src, packet.ssrc), []).append(packet)
        voices = {}
        for key, packets in by_stream.items():
            order = np.argsort(_unwrap([p.sequence for p in packets]), kind="stable")
            voices[key] = decode(b"".join(packets[i].payload for i in order))
        return voices


def _unwrap(sequences):
    """16-bit sequence numbers extended across wrap-arounds, in arrival order."""
    out, base, previous = [], 0, None
    for sequence in sequences:
        if previous is not None and sequence - previous < -0x8000:
            base += 0x10000
        elif previous is not None and sequence - previous > 0x8000:
            base -= 0x10000
        out.append(base + sequence)
        previous = sequence
    return out


# --------------------------------------------------------------------------------------------
# Malformed SIP: a raw UDP burst
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SipProbe:
    """One datagram of the burst and what a robust UA may answer to it."""

    name: str
    data: bytes
    allowed: frozenset
    """Status codes it may answer with; silence is allowed unless ``required``."""
    required: bool = False
    """An answer in ``allowed`` must come."""


@dataclasses.dataclass(frozen=True)
class ProbeOutcome:
    probe: SipProbe
    statuses: tuple
    """Status codes received while this probe was the last one sent."""


@dataclasses.dataclass(frozen=True)
class BurstReport:
    outcomes: tuple

    def statuses(self, name):
        return next(o.statuses for o in self.outcomes if o.probe.name == name)

    def problems(self):
        """One line per probe answered wrongly, or not answered when it had to be."""
        lines = []
        for outcome in self.outcomes:
            probe = outcome.probe
            wrong = [s for s in outcome.statuses if s not in probe.allowed]
            if wrong:
                lines.append(f"{probe.name}: answered {wrong}, allowed {sorted(probe.allowed)} or silence")
            if probe.required and not any(s in probe.allowed for s in outcome.statuses):
                lines.append(f"{probe.name}: needed one of {sorted(probe.allowed)}, got {list(outcome.statuses)}")
        return lines


def _request(method, target, local, call_id, *, version="SIP/2.0", drop=(), content_length=None, body=b"",
             extra_headers=()):
    host, port = target
    lhost, lport = local
    headers = [
        ("Via", f"SIP/2.0/UDP {lhost}:{lport};branch=z9hG4bK{call_id}x{method.lower()};rport"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:probe@{lhost}:{lport}>;tag=probe{call_id}"),
        ("To", f"<sip:agent@{host}:{port}>"),
        ("Call-ID", f"{call_id}@{lhost}"),
        ("CSeq", f"1 {method}"),
        ("Contact", f"<sip:probe@{lhost}:{lport}>"),
        *extra_headers,
        ("Content-Length", str(len(body) if content_length is None else content_length)),
    ]
    lines = [f"{method} sip:agent@{host}:{port} {version}"]
    lines += [f"{name}: {value}" for name, value in headers if name not in drop]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def malformed_probes(target, local, *, seed=4733):
    """The burst: a bad start line, no Call-ID, a Content-Length past the body, binary junk,
    an unknown method (501 or 405 required), a SIP/3.0 request; then a valid OPTIONS (200
    required), which shows the UA survived the rest."""
    junk = bytes(random.Random(seed).randrange(256) for _ in range(512))
    bad_request = frozenset({400})
    return (
        SipProbe("bad_start_line", b"HELLO agent this is not SIP\r\nCall-ID: bad@x\r\n\r\n", bad_request),
        SipProbe("missing_call_id", _request("OPTIONS", target, local, "nocid", drop={"Call-ID"}), bad_request),
        SipProbe("content_length_too_large",
                 _request("OPTIONS", target, local, "longbody", content_length=400, body=b"v=0\r\n",
                          extra_headers=[("Content-Type", "application/sdp")]), bad_request),
        SipProbe("binary_junk", junk, frozenset()),
        SipProbe("unknown_method", _request("FOO", target, local, "foo"), frozenset({501, 405}), required=True),
        SipProbe("sip_version_3", _request("OPTIONS", target, local, "v3", version="SIP/3.0"),
                 frozenset({400, 505})),
        SipProbe("options_after_burst", _request("OPTIONS", target, local, "after"), frozenset({200}),
                 required=True),
    )


_RESEND_S = 0.5
"""T1 of RFC 3261: how long the burst waits before sending a probe that must be answered again."""


def _status(datagram):
    match = re.match(rb"SIP/2\.0 (\d{3}) ", datagram)
    return int(match.group(1)) if match else None


def send_malformed_burst(target=("127.0.0.1", 5080), *, local_port=None, quiet_wait_s=0.3,
                         answer_wait_s=2.0, probes=None):
    """Send each probe in turn from 127.0.0.1 and record the statuses that come back before the
    next: ``quiet_wait_s`` after one that may go unanswered, up to ``answer_wait_s`` (sent again
    every 0.5 s, as UDP would) for one that must be answered. At most about 5 s in all."""
    if target[0] != LOOPBACK:
        raise ValueError(f"the malformed burst stays on {LOOPBACK}, not {target[0]}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, local_port or 0))
        local = sock.getsockname()
        outcomes = []
        for probe in probes or malformed_probes(target, local):
            _drain(sock)
            outcomes.append(ProbeOutcome(probe, _exchange(sock, target, probe, quiet_wait_s, answer_wait_s)))
        return BurstReport(tuple(outcomes))


def _drain(sock):
    for _ in range(100):
        if not select.select([sock], [], [], 0)[0]:
            return
        sock.recv(65535)


def _exchange(sock, target, probe, quiet_wait_s, answer_wait_s):
    """Send one probe once, or, when an answer is required, again every ``_RESEND_S`` until one
    comes; collect statuses until the wait is over (or a required probe got a final answer)."""
    statuses = []
    now = time.monotonic()
    end = now + (answer_wait_s if probe.required else quiet_wait_s)
    sends_left, next_send = (1 + int(answer_wait_s / _RESEND_S) if probe.required else 1), now
    for _ in range(10_000):
        now = time.monotonic()
        if now >= end:
            break
        if sends_left and now >= next_send and not statuses:
            sock.sendto(probe.data, target)
            sends_left, next_send = sends_left - 1, now + _RESEND_S
        if not select.select([sock], [], [], min(0.05, end - now))[0]:
            continue
        status = _status(sock.recv(65535))
        if status is not None:
            statuses.append(status)
            if probe.required and status >= 200:
                break
    return tuple(statuses)
