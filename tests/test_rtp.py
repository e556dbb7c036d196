"""RTP packets, the sending stream, reception statistics, RTCP reports and RFC 4733 DTMF."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.appliance.media.rtp import (Bye, DtmfEvent, DtmfReceiver, ReceiverReport, ReceiverStats, ReportBlock,
                                        RtpError, RtpPacket, RtpSender, SenderReport, SourceDescription, build_rtcp,
                                        ntp_timestamp, parse_rtcp)

NTP_1970 = 2_208_988_800 << 32


def rng(seed=7):
    return random.Random(seed)


# Packets

def test_packet_round_trips_with_marker_and_csrcs():
    packet = RtpPacket(payload_type=8, sequence=65535, timestamp=0xFFFFFFFF, ssrc=0xDEADBEEF, payload=b"\xd5" * 160,
                       marker=True, csrcs=(1, 0xFFFFFFFF))
    data = packet.to_bytes()
    assert len(data) == 12 + 8 + 160
    assert data[:2] == bytes([0x82, 0x88])
    assert RtpPacket.parse(data) == packet


def test_hand_built_packet_with_csrcs_extension_and_padding():
    data = bytes([
        0b1011_0010,              # V=2 P=1 X=1 CC=2
        0b1000_1000,              # M=1 PT=8
        0x12, 0x34,               # sequence
        0x00, 0x01, 0x00, 0x00,   # timestamp 65536
        0xCA, 0xFE, 0xBA, 0xBE,   # SSRC
        0x00, 0x00, 0x00, 0x01,   # CSRC 1
        0x00, 0x00, 0x00, 0x02,   # CSRC 2
        0xBE, 0xDE, 0x00, 0x01,   # extension: profile 0xBEDE, one 32-bit word
        0x10, 0xAA, 0x00, 0x00,   # the extension word
        ord("a"), ord("b"), ord("c"),
        0x00, 0x00, 0x03,         # three octets of padding, the last one counting them
    ])
    assert RtpPacket.parse(data) == RtpPacket(payload_type=8, sequence=0x1234, timestamp=65536, ssrc=0xCAFEBABE,
                                              payload=b"abc", marker=True, csrcs=(1, 2))


@pytest.mark.parametrize("data, why", [
    (b"\x80\x00\x00", "12-byte header"),
    (bytes([0x40, 0]) + bytes(10), "version 1"),
    (bytes([0x82, 0]) + bytes(14), "CSRCs"),
    (bytes([0x90, 0]) + bytes(10) + b"\xbe\xde", "header extension"),
    (bytes([0x90, 0]) + bytes(10) + b"\xbe\xde\x00\x02" + bytes(4), "header extension"),
    (bytes([0xA0, 0]) + bytes(10) + b"ab\x00", "padding length 0"),
    (bytes([0xA0, 0]) + bytes(10) + b"ab\x04", "padding length 4"),
])
def test_malformed_packets_are_rtp_errors(data, why):
    with pytest.raises(RtpError, match=why):
        RtpPacket.parse(data)


def test_a_header_field_out_of_range_is_refused():
    with pytest.raises(ValueError):
        RtpPacket(payload_type=128, sequence=0, timestamp=0, ssrc=0, payload=b"")


# The sending stream

def test_sender_starts_at_random_values_that_a_seed_repeats():
    a, b = RtpSender(0, rng=rng(1)), RtpSender(0, rng=rng(1))
    assert a.packet(b"x", 160) == b.packet(b"x", 160)
    assert RtpSender(0, rng=rng(2)).ssrc != a.ssrc


def test_sequence_wraps_at_65535_and_timestamp_at_32_bits():
    sender = RtpSender(0, rng=rng())
    sender.sequence, sender.timestamp = 65534, 0xFFFFFF00
    packets = [RtpPacket.parse(sender.packet(bytes(160), 160)) for _ in range(3)]
    assert [p.sequence for p in packets] == [65534, 65535, 0]
    assert [p.timestamp for p in packets] == [0xFFFFFF00, 0xFFFFFFA0, 0x00000040]


def test_skipped_silence_moves_the_timestamp_but_not_the_sequence():
    sender = RtpSender(8, rng=rng())
    first = RtpPacket.parse(sender.packet(bytes(160), 160))
    sender.skip(800)
    second = RtpPacket.parse(sender.packet(bytes(160), 160, marker=True))
    assert second.sequence == (first.sequence + 1) & 0xFFFF
    assert second.timestamp == (first.timestamp + 960) & 0xFFFFFFFF
    assert (first.marker, second.marker, second.payload_type) == (False, True, 8)


def test_sender_report_counts_packets_and_payload_octets():
    sender = RtpSender(0, rng=rng())
    for _ in range(5):
        sender.packet(bytes(160), 160)
    sender.dtmf_packets("1", 100, payload_type=101)
    report = sender.sender_report(1.5)
    assert (report.packet_count, report.octet_count) == (5 + 4, 5 * 160 + 4 * 4)
    assert report.ntp_timestamp == NTP_1970 + (3 << 31)
    assert report.rtp_timestamp == sender.timestamp


# Reception statistics

def stream(seqs, *, first_seq=1000, ssrc=42, ts_step=160, period=0.02, arrivals=None):
    """Packets for the relative sequence numbers ``seqs`` (timestamps follow them), with arrival times."""
    for i, n in enumerate(seqs):
        packet = RtpPacket(payload_type=0, sequence=(first_seq + n) & 0xFFFF,
                           timestamp=(5000 + n * ts_step) & 0xFFFFFFFF, ssrc=ssrc, payload=b"")
        yield packet, (arrivals[i] if arrivals is not None else n * period)


def feed(stats, packets):
    return [stats.update(packet, at) for packet, at in packets]


def test_a_new_source_is_on_probation_for_the_first_packet():
    stats = ReceiverStats()
    assert feed(stats, stream([0, 1, 2])) == [False, True, True]
    assert (stats.received, stats.expected, stats.cumulative_lost) == (2, 2, 0)


def test_probation_restarts_when_the_first_packets_are_not_in_sequence():
    stats = ReceiverStats()
    assert feed(stats, stream([0, 2, 3, 4])) == [False, False, True, True]
    assert stats.expected == 2


def test_sequence_wrap_is_counted_in_the_extended_highest_sequence():
    stats = ReceiverStats()
    feed(stats, stream(range(20), first_seq=65530))
    assert stats.highest_seq == (1 << 16) + (65530 + 19 - 65536)
    assert (stats.received, stats.expected, stats.cumulative_lost) == (19, 19, 0)


def test_dropped_packets_are_lost_and_reported_as_a_fraction():
    stats = ReceiverStats()
    seqs = [n for n in range(101) if n not in (10, 20, 30, 40, 50)]
    feed(stats, stream(seqs))
    assert (stats.expected, stats.received, stats.cumulative_lost) == (100, 95, 5)
    assert stats.fraction_lost == 5 * 256 // 100
    block = stats.report_block()
    assert (block.ssrc, block.fraction_lost, block.cumulative_lost) == (42, 12, 5)
    assert block.highest_seq == 1100


def test_fraction_lost_covers_only_the_interval_since_the_last_report():
    stats = ReceiverStats()
    feed(stats, stream([n for n in range(50) if n != 25]))
    assert stats.report_block().fraction_lost > 0
    feed(stats, stream(range(50, 100)))
    block = stats.report_block()
    assert (block.fraction_lost, block.cumulative_lost) == (0, 1)


def test_duplicates_make_cumulative_loss_negative_and_fraction_zero():
    stats = ReceiverStats()
    feed(stats, stream([0, 1, 2, 2, 3, 3, 4]))
    assert (stats.expected, stats.received, stats.cumulative_lost, stats.fraction_lost) == (4, 6, -2, 0)
    assert stats.report_block().cumulative_lost == -2


def test_reordered_packets_are_not_lost():
    stats = ReceiverStats()
    assert feed(stats, stream([0, 1, 3, 2, 5, 4, 6, 8, 7])) == [False] + [True] * 8
    assert (stats.expected, stats.received, stats.cumulative_lost) == (8, 8, 0)


def test_a_big_jump_is_believed_only_when_the_next_packet_follows_it():
    stats = ReceiverStats()
    feed(stats, stream(range(10)))
    assert feed(stats, stream([5000, 5001, 5002])) == [False, True, True]
    assert (stats.received, stats.expected, stats.cumulative_lost) == (2, 2, 0)


def test_a_new_ssrc_starts_the_statistics_afresh():
    stats = ReceiverStats()
    feed(stats, stream(range(10)))
    assert feed(stats, stream(range(3), first_seq=7, ssrc=99)) == [False, True, True]
    assert (stats.ssrc, stats.received) == (99, 2)


def reference_jitter(timestamps, arrivals, rate):
    """RFC 3550 section 6.4.1 written out on the transit times, all in seconds-then-units, floats."""
    transit = [arrival * rate - ts for ts, arrival in zip(timestamps, arrivals)]
    jitter = 0.0
    for previous, current in zip(transit, transit[1:]):
        jitter += (abs(current - previous) - jitter) / 16
    return jitter


def test_jitter_matches_an_independent_computation_on_a_jittery_stream():
    shake = rng(3)
    arrivals = [n * 0.02 + 0.050 + shake.uniform(0, 0.030) for n in range(500)]
    stats = ReceiverStats()
    feed(stats, stream(range(500), arrivals=arrivals))
    expected = reference_jitter([5000 + n * 160 for n in range(1, 500)], arrivals[1:], 8000)
    assert stats.jitter == int(expected)
    assert stats.jitter_ms == pytest.approx(expected / 8)
    # Uniform delay over 30 ms: the mean |D| of two draws is 10 ms, 80 timestamp units.
    assert 60 < stats.jitter < 100


def test_jitter_is_zero_for_a_steady_stream_and_converges_for_alternating_delay():
    steady = ReceiverStats()
    feed(steady, stream(range(100), first_seq=65500))
    assert steady.jitter == 0
    alternating = ReceiverStats()
    feed(alternating, stream(range(400), arrivals=[n * 0.02 + 0.005 * (n % 2) for n in range(400)]))
    assert alternating.jitter_ms == pytest.approx(5.0, rel=1e-6)


def test_jitter_survives_the_timestamp_wrapping():
    stats = ReceiverStats()
    packets = [RtpPacket(payload_type=0, sequence=n, timestamp=(0xFFFFFE00 + 160 * n) & 0xFFFFFFFF, ssrc=1, payload=b"")
               for n in range(10)]
    for n, packet in enumerate(packets):
        stats.update(packet, n * 0.02)
    assert stats.jitter == 0


def test_report_block_gives_the_last_sender_report_and_the_delay_since():
    stats = ReceiverStats()
    feed(stats, stream(range(5)))
    report = SenderReport(ssrc=42, ntp_timestamp=0x1122334455667788, rtp_timestamp=0, packet_count=0, octet_count=0)
    stats.sender_report_received(report, 10.0)
    block = stats.report_block(now_s=11.5)
    assert (block.last_sr, block.delay_since_last_sr) == (0x33445566, 3 * 32768)


# RTCP

BLOCKS = (ReportBlock(ssrc=0x01020304, fraction_lost=12, cumulative_lost=-3, highest_seq=70000, jitter=85,
                      last_sr=0x33445566, delay_since_last_sr=98304),
          ReportBlock(ssrc=7, fraction_lost=255, cumulative_lost=0x7FFFFF, highest_seq=1, jitter=0))


def test_sender_report_with_sdes_and_bye_round_trips():
    report = SenderReport(ssrc=0xAABBCCDD, ntp_timestamp=ntp_timestamp(1_700_000_000.25), rtp_timestamp=123456,
                          packet_count=500, octet_count=80000, reports=BLOCKS)
    data = build_rtcp(report, cname="parley@192.0.2.50", bye=Bye(ssrcs=(0xAABBCCDD,), reason="call ended"))
    assert len(data) % 4 == 0
    assert parse_rtcp(data) == [report, SourceDescription(cnames=((0xAABBCCDD, "parley@192.0.2.50"),)),
                                Bye(ssrcs=(0xAABBCCDD,), reason="call ended")]


@pytest.mark.parametrize("cname", ["", "a", "ab", "abc", "abcd", "x" * 255])
def test_receiver_report_round_trips_whatever_the_cname_padding(cname):
    report = ReceiverReport(ssrc=5, reports=BLOCKS[:1])
    assert parse_rtcp(build_rtcp(report, cname=cname)) == [report, SourceDescription(cnames=((5, cname),))]


def test_parse_a_hand_built_compound_packet():
    data = bytes([
        # RR: V=2 P=0 RC=1, PT=201, length 7 (32 bytes)
        0x81, 201, 0x00, 0x07,
        0x00, 0x00, 0x30, 0x39,   # SSRC of the reporter: 12345
        0x00, 0x00, 0x00, 0x2A,   # SSRC reported on: 42
        0x40, 0xFF, 0xFF, 0xFE,   # fraction lost 64, cumulative lost -2
        0x00, 0x01, 0x00, 0x05,   # extended highest sequence 65541
        0x00, 0x00, 0x00, 0x50,   # jitter 80
        0xDE, 0xAD, 0xBE, 0xEF,   # LSR
        0x00, 0x01, 0x00, 0x00,   # DLSR 1 s
        # SDES: SC=1, PT=202, length 3 (16 bytes)
        0x81, 202, 0x00, 0x03,
        0x00, 0x00, 0x30, 0x39,
        0x01, 0x05, ord("a"), ord("l"), ord("i"), ord("c"), ord("e"),   # CNAME "alice"
        0x00,                     # end of items, already on a 32-bit boundary
        # APP: subtype 0, PT=204, length 2 (12 bytes): not ours, skipped
        0x80, 204, 0x00, 0x02,
        0x00, 0x00, 0x30, 0x39,
        ord("P"), ord("R"), ord("L"), ord("Y"),
        # BYE: SC=1, PT=203, length 1, no reason
        0x81, 203, 0x00, 0x01,
        0x00, 0x00, 0x30, 0x39,
    ])
    assert parse_rtcp(data) == [
        ReceiverReport(ssrc=12345, reports=(ReportBlock(ssrc=42, fraction_lost=64, cumulative_lost=-2,
                                                        highest_seq=65541, jitter=80, last_sr=0xDEADBEEF,
                                                        delay_since_last_sr=65536),)),
        SourceDescription(cnames=((12345, "alice"),)),
        Bye(ssrcs=(12345,), reason=None),
    ]


@pytest.mark.parametrize("data, why", [
    (b"\x80\xc9", "4-byte header"),
    (bytes([0x40, 201, 0, 1]) + bytes(4), "version 1"),
    (bytes([0x80, 201, 0, 2]) + bytes(4), "past the end"),
    (bytes([0x80, 201, 0, 1]) + bytes(4) + b"\x80", "stray bytes"),
    (bytes([0x81, 201, 0, 1]) + bytes(4), "report blocks"),
    (bytes([0x80, 200, 0, 1]) + bytes(4), "sender info"),
    (bytes([0x81, 202, 0, 2]) + bytes(4) + b"\x01\x09ab", "runs past"),
    (bytes([0x81, 202, 0, 1]) + bytes(4), "no end"),
    (bytes([0x82, 203, 0, 1]) + bytes(4), "sources"),
    (bytes([0x81, 203, 0, 2]) + bytes(4) + b"\x09abc", "reason"),
    (bytes([0xA0, 201, 0, 1]) + bytes(4), "padding"),
])
def test_malformed_rtcp_is_an_rtp_error(data, why):
    with pytest.raises(RtpError, match=why):
        parse_rtcp(data)


def test_ntp_timestamp_is_32_32_fixed_point_since_1900():
    assert ntp_timestamp(0) == NTP_1970
    assert ntp_timestamp(0.5) == NTP_1970 + (1 << 31)
    seconds, fraction = divmod(ntp_timestamp(1_700_000_000.75), 1 << 32)
    assert (seconds, fraction) == (1_700_000_000 + 2_208_988_800, 3 << 30)


# DTMF

def events(packets):
    return [(p.marker, p.timestamp, DtmfEvent.parse(p.payload)) for p in map(RtpPacket.parse, packets)]


def test_a_key_press_is_updates_every_50_ms_then_the_end_three_times():
    sender = RtpSender(0, rng=rng())
    start, first_seq = sender.timestamp, sender.sequence
    packets = sender.dtmf_packets("#", 200, payload_type=101)
    parsed = events(packets)
    assert [(marker, ts) for marker, ts, _ in parsed] == [(True, start)] + [(False, start)] * 5
    assert [e.duration for _, _, e in parsed] == [400, 800, 1200, 1600, 1600, 1600]
    assert [e.end for _, _, e in parsed] == [False] * 3 + [True] * 3
    assert {(e.event, e.digit, e.volume) for _, _, e in parsed} == {(11, "#", 10)}
    assert [RtpPacket.parse(p).sequence for p in packets] == [(first_seq + i) & 0xFFFF for i in range(6)]
    assert sender.timestamp == (start + 1600) & 0xFFFFFFFF


def test_a_press_shorter_than_one_update_is_three_end_packets_the_first_marked():
    parsed = events(RtpSender(0, rng=rng()).dtmf_packets("7", 40, payload_type=96))
    assert [(m, e.end, e.duration) for m, _, e in parsed] == [(True, True, 320), (False, True, 320), (False, True, 320)]


@pytest.mark.parametrize("digit, duration_ms", [("x", 100), ("12", 100), ("1", 0), ("1", 9000)])
def test_dtmf_packets_refuse_what_rfc_4733_cannot_carry(digit, duration_ms):
    with pytest.raises(ValueError):
        RtpSender(0, rng=rng()).dtmf_packets(digit, duration_ms, payload_type=101)


def test_dtmf_event_round_trips_and_knows_its_digit():
    event = DtmfEvent(event=12, end=True, volume=63, duration=0xFFFF)
    assert DtmfEvent.parse(event.to_bytes()) == event
    assert event.digit == "A"
    assert DtmfEvent(event=16, end=False, volume=0, duration=0).digit is None
    with pytest.raises(RtpError):
        DtmfEvent.parse(b"\x01\x80")


def test_digits_come_through_once_each_despite_loss_and_duplicated_ends():
    sender = RtpSender(0, rng=rng(11))
    received = []
    lossy = rng(5)
    receiver = DtmfReceiver(payload_type=101)
    for n, digit in enumerate("1234567890*#ABCD"):
        sender.packet(bytes(160), 160)  # a little audio between presses
        packets = sender.dtmf_packets(digit, 160, payload_type=101)
        if n % 4 == 1:
            packets = packets[3:]                               # the start and all updates lost
        elif n % 4 == 2:
            packets = [p for p in packets if lossy.random() < 0.5] or packets[-1:]
        elif n % 4 == 3:
            packets = packets + packets[-3:]                    # the network duplicated the ends
        for data in packets:
            digit_heard = receiver.feed(RtpPacket.parse(data))
            if digit_heard:
                received.append(digit_heard)
    assert "".join(received) == "1234567890*#ABCD"


def test_the_same_digit_pressed_twice_is_heard_twice():
    sender, receiver = RtpSender(0, rng=rng()), DtmfReceiver()
    presses = [sender.dtmf_packets("5", 100, payload_type=101) for _ in range(2)]
    heard = [receiver.feed(RtpPacket.parse(data)) for packets in presses for data in packets]
    assert [d for d in heard if d] == ["5", "5"]


def test_the_receiver_ignores_other_payload_types_and_non_digit_events():
    receiver = DtmfReceiver(payload_type=101)
    audio = RtpPacket(payload_type=0, sequence=1, timestamp=0, ssrc=1, payload=bytes(160))
    flash = RtpPacket(payload_type=101, sequence=2, timestamp=0, ssrc=1,
                      payload=DtmfEvent(event=16, end=False, volume=10, duration=400).to_bytes())
    assert receiver.feed(audio) is None
    assert receiver.feed(flash) is None


# Fuzz: anything off the wire raises only the module's own errors

RTP_PREFIXES = st.sampled_from([b"", b"\x80", b"\x90", b"\xa0", b"\xbf", b"\x81\xc8", b"\x80\xc9\x00\x01",
                                b"\x81\xca\x00\x02", b"\x81\xcb\x00\x01", b"\xa1\xc9\x00\x07"])


@settings(max_examples=300, deadline=None)
@given(RTP_PREFIXES, st.binary(max_size=200))
def test_random_bytes_raise_only_rtp_errors(prefix, data):
    for parse in (RtpPacket.parse, parse_rtcp, DtmfEvent.parse):
        try:
            parse(prefix + data)
        except RtpError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, len(build_rtcp(ReceiverReport(1, BLOCKS), cname="x"))))
def test_truncated_or_corrupted_rtcp_raises_only_rtp_errors(noise, cut):
    data = build_rtcp(ReceiverReport(1, BLOCKS), cname="x", bye=Bye(ssrcs=(1, 2), reason="bye"))
    for candidate in (data[:cut], data[:cut] + noise, bytes(a ^ b for a, b in zip(data, noise)) + data[len(noise):]):
        try:
            parse_rtcp(candidate)
        except RtpError:
            pass
