"""SDP offer/answer: what real phones and PBXes offer, what Parley answers, and what it refuses."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.appliance.media.sip.sdp import (Answer, Codec, MediaOffer, SdpError, SdpNegotiationError, answer, offer,
                                            parse_offer)

OURS = dict(address="192.0.2.50", port=40000, session_id=77, session_version=1)


def sdp(text, line_end="\r\n"):
    """``text`` (one SDP line per line, indented freely) as bytes with ``line_end`` after each line."""
    lines = [line.strip() for line in text.strip().splitlines()]
    return (line_end.join(lines) + line_end).encode()


ASTERISK = sdp("""
    v=0
    o=- 1693830511 1693830511 IN IP4 192.168.1.10
    s=Asterisk
    c=IN IP4 192.168.1.10
    t=0 0
    m=audio 10000 RTP/AVP 0 8 3 101
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:3 GSM/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-16
    a=ptime:20
    a=maxptime:150
    a=sendrecv
""")

FREESWITCH = sdp("""
    v=0
    o=FreeSWITCH 1700000000 1700000001 IN IP4 203.0.113.5
    s=FreeSWITCH
    c=IN IP4 203.0.113.5
    t=0 0
    m=audio 16384 RTP/AVP 9 102 8 0 101 13
    a=rtpmap:9 G722/8000
    a=rtpmap:102 opus/48000/2
    a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20; minptime=10; maxptime=40
    a=rtpmap:8 PCMA/8000
    a=rtpmap:0 PCMU/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-16
    a=rtpmap:13 CN/8000
    a=ptime:20
""")

BARESIP_IPV6 = sdp("""
    v=0
    o=- 3204519112 3123568342 IN IP6 2001:db8::10
    s=-
    c=IN IP6 2001:db8::10
    t=0 0
    m=audio 5004 RTP/AVP 96 9 0 8 101 102
    b=AS:64
    a=rtpmap:96 opus/48000/2
    a=fmtp:96 stereo=1;sprop-stereo=1
    a=rtpmap:101 telephone-event/48000
    a=rtpmap:102 telephone-event/8000
    a=fmtp:102 0-15
    a=sendrecv
    a=label:1
    a=ssrc:3815193637 cname:e6b2c3f1
    a=rtcp-rsize
""", line_end="\n")

POLYCOM_MEDIA_LEVEL_C = sdp("""
    v=0
    o=- 1416404452 1416404452 IN IP4 10.1.1.20
    s=Polycom IP Phone
    t=0 0
    a=sendrecv
    m=audio 2224 RTP/AVP 9 0 8 18 127
    c=IN IP4 10.1.1.20
    a=rtpmap:9 G722/8000/1
    a=rtpmap:0 PCMU/8000/1
    a=rtpmap:8 PCMA/8000
    a=rtpmap:18 G729/8000
    a=fmtp:18 annexb=no
    a=rtpmap:127 telephone-event/8000
""")

CISCO_NO_T_LINE = sdp("""
    v=0
    o=CiscoSystemsSIP-GW-UserAgent 2453 5631 IN IP4 172.16.0.9
    s=SIP Call
    c=IN IP4 172.16.0.9
    b=CT:384
    m=audio 27514 RTP/AVP 8 0 18 101
    b=TIAS:64000
    c=IN IP4 172.16.0.10
    a=rtpmap:8 pcma/8000
    a=rtpmap:18 G729/8000
    a=fmtp:18 annexb=no
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-16
    a=ptime:30
""")

STATIC_ONLY = sdp("""
    v=0
    o=- 1 1 IN IP4 198.51.100.4
    s=-
    c=IN IP4 198.51.100.4
    t=0 0
    m=audio 7078 RTP/AVP 8 0
""", line_end="\n")


def with_lines(base, replace=None, add=()):
    """``base`` with lines swapped (old -> new, new None drops it) and ``add`` appended."""
    lines = base.decode().splitlines()
    for old, new in (replace or {}).items():
        index = lines.index(old)
        lines[index:index + 1] = [] if new is None else [new]
    return ("\r\n".join(lines + list(add)) + "\r\n").encode()


# What we learn from real offers

def test_asterisk_offer_is_read_in_its_order_of_preference():
    media = parse_offer(ASTERISK)
    assert (media.address, media.port) == ("192.168.1.10", 10000)
    assert [c.name for c in media.codecs] == ["PCMU", "PCMA", "GSM", "telephone-event"]
    assert media.dtmf_payload_type == 101
    assert (media.ptime, media.direction) == (20, "sendrecv")


def test_freeswitch_offer_keeps_unknown_codecs_and_channels_count_does_not_confuse_rtpmap():
    media = parse_offer(FREESWITCH)
    assert media.codecs == (Codec("G722", 9, 8000), Codec("opus", 102, 48000), Codec("PCMA", 8, 8000),
                            Codec("PCMU", 0, 8000), Codec("telephone-event", 101, 8000), Codec("CN", 13, 8000))


def test_ipv6_offer_with_bare_lf_and_wideband_dtmf_uses_the_8000_hz_telephone_event():
    media = parse_offer(BARESIP_IPV6)
    assert (media.address, media.port) == ("2001:db8::10", 5004)
    assert media.dtmf_payload_type == 102
    assert media.ptime is None


def test_media_level_connection_and_session_level_direction_are_used():
    media = parse_offer(POLYCOM_MEDIA_LEVEL_C)
    assert media.address == "10.1.1.20"
    assert media.direction == "sendrecv"
    assert media.dtmf_payload_type == 127


def test_media_level_connection_overrides_the_session_one_and_a_missing_t_line_is_accepted():
    media = parse_offer(CISCO_NO_T_LINE)
    assert media.address == "172.16.0.10"
    assert media.codecs[0] == Codec("PCMA", 8, 8000)
    assert media.ptime == 30


def test_static_payload_types_need_no_rtpmap():
    media = parse_offer(STATIC_ONLY)
    assert media.codecs == (Codec("PCMA", 8, 8000), Codec("PCMU", 0, 8000))
    assert media.dtmf_payload_type is None


def test_multicast_ttl_suffix_and_port_count_are_stripped():
    media = parse_offer(with_lines(STATIC_ONLY, {"c=IN IP4 198.51.100.4": "c=IN IP4 233.252.0.1/127",
                                                 "m=audio 7078 RTP/AVP 8 0": "m=audio 7078/2 RTP/AVP 8 0"}))
    assert (media.address, media.port) == ("233.252.0.1", 7078)


# Hold and direction

@pytest.mark.parametrize("attribute, theirs, ours", [
    ("a=sendonly", "sendonly", "recvonly"),
    ("a=recvonly", "recvonly", "sendonly"),
    ("a=inactive", "inactive", "inactive"),
    ("a=sendrecv", "sendrecv", "sendrecv"),
])
def test_our_direction_is_the_opposite_of_the_offer(attribute, theirs, ours):
    data = with_lines(ASTERISK, {"a=sendrecv": attribute})
    assert parse_offer(data).direction == theirs
    result = answer(data, **OURS)
    assert result.direction == ours
    assert f"a={ours}\r\n".encode() in result.sdp


def test_legacy_hold_with_zero_address_means_the_remote_only_sends():
    data = with_lines(ASTERISK, {"c=IN IP4 192.168.1.10": "c=IN IP4 0.0.0.0"})
    media = parse_offer(data)
    assert (media.address, media.direction) == ("0.0.0.0", "sendonly")
    assert answer(media, **OURS).direction == "recvonly"


def test_legacy_hold_on_a_recvonly_stream_is_inactive():
    data = with_lines(ASTERISK, {"c=IN IP4 192.168.1.10": "c=IN IP4 0.0.0.0", "a=sendrecv": "a=recvonly"})
    assert parse_offer(data).direction == "inactive"


def test_media_level_direction_overrides_the_session_level_one():
    data = with_lines(POLYCOM_MEDIA_LEVEL_C, add=["a=inactive"])
    assert parse_offer(data).direction == "inactive"


# The answer

def test_answer_picks_the_first_offered_codec_we_support_and_echoes_dtmf():
    result = answer(FREESWITCH, **OURS)
    assert result.codec == Codec("PCMA", 8, 8000)
    assert result.dtmf_payload_type == 101
    assert result.remote == ("203.0.113.5", 16384)
    assert result.sdp.decode().split("\r\n") == [
        "v=0",
        "o=parley 77 1 IN IP4 192.0.2.50",
        "s=parley",
        "c=IN IP4 192.0.2.50",
        "t=0 0",
        "m=audio 40000 RTP/AVP 8 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
        "",
    ]


def test_answer_honours_our_supported_list():
    assert answer(ASTERISK, **OURS, supported=("PCMA",)).codec == Codec("PCMA", 8, 8000)


def test_answer_without_telephone_event_has_no_dtmf_payload_type():
    result = answer(STATIC_ONLY, **OURS)
    assert result.dtmf_payload_type is None
    assert b"telephone-event" not in result.sdp
    assert b"m=audio 40000 RTP/AVP 8\r\n" in result.sdp


def test_answer_uses_the_offers_dynamic_payload_type_for_g711():
    data = with_lines(STATIC_ONLY, {"m=audio 7078 RTP/AVP 8 0": "m=audio 7078 RTP/AVP 112"},
                      add=["a=rtpmap:112 PCMU/8000"])
    assert answer(data, **OURS).codec == Codec("PCMU", 112, 8000)


def test_answer_reads_back_as_what_was_agreed():
    result = answer(BARESIP_IPV6, **OURS)
    back = parse_offer(result.sdp)
    assert (back.address, back.port) == ("192.0.2.50", 40000)
    assert back.codecs[0] == result.codec == Codec("PCMU", 0, 8000)
    assert back.dtmf_payload_type == 102
    assert (back.ptime, back.direction) == (20, "sendrecv")


def test_answer_rejects_the_other_streams_with_port_zero_in_the_offers_order():
    data = with_lines(ASTERISK, add=["m=video 10002 RTP/AVP 96 97", "a=rtpmap:96 H264/90000"])
    video_first = sdp("""
        v=0
        o=- 5 5 IN IP4 10.0.0.7
        s=-
        c=IN IP4 10.0.0.7
        t=0 0
        m=video 9000 RTP/AVP 96
        a=rtpmap:96 VP8/90000
        m=audio 9002 RTP/AVP 0
    """)
    lines = answer(data, **OURS).sdp.decode().split("\r\n")
    assert [line for line in lines if line.startswith("m=")] == ["m=audio 40000 RTP/AVP 0 101",
                                                                 "m=video 0 RTP/AVP 96 97"]
    lines = answer(video_first, **OURS).sdp.decode().split("\r\n")
    assert [line for line in lines if line.startswith("m=")] == ["m=video 0 RTP/AVP 96", "m=audio 40000 RTP/AVP 0"]


def test_answer_to_a_hand_made_media_offer():
    media = MediaOffer(address="10.9.9.9", port=6000, codecs=(Codec("PCMU", 0, 8000),), dtmf_payload_type=None,
                       ptime=None, direction="sendonly")
    result = answer(media, **OURS)
    assert result == Answer(sdp=result.sdp, codec=Codec("PCMU", 0, 8000), dtmf_payload_type=None,
                            remote=("10.9.9.9", 6000), direction="recvonly")
    assert result.sdp.count(b"m=") == 1


def test_answer_on_ipv6_says_ip6():
    result = answer(ASTERISK, **{**OURS, "address": "2001:db8::50"})
    assert b"c=IN IP6 2001:db8::50\r\n" in result.sdp


# Our offers

def test_offer_reads_back_with_g711_and_dtmf():
    media = parse_offer(offer(**OURS))
    assert media.codecs == (Codec("PCMU", 0, 8000), Codec("PCMA", 8, 8000), Codec("telephone-event", 101, 8000))
    assert (media.dtmf_payload_type, media.ptime, media.direction) == (101, 20, "sendrecv")


def test_hold_offer_is_sendonly_and_its_answer_recvonly():
    held = offer(**{**OURS, "session_version": 2}, codecs=("PCMA",), dtmf_payload_type=None, direction="sendonly")
    assert b"o=parley 77 2 IN IP4" in held
    assert parse_offer(held).direction == "sendonly"
    assert answer(held, address="10.0.0.1", port=5000, session_id=1, session_version=1).direction == "recvonly"


@pytest.mark.parametrize("bad", [dict(codecs=("G722",)), dict(codecs=()), dict(direction="hold"),
                                 dict(dtmf_payload_type=8), dict(address="")])
def test_offer_refuses_what_it_cannot_say(bad):
    with pytest.raises(ValueError):
        offer(**{**OURS, **bad})


# Refusals

def test_no_common_codec_is_a_negotiation_error():
    only_wideband = sdp("""
        v=0
        o=- 1 1 IN IP4 10.0.0.3
        s=-
        c=IN IP4 10.0.0.3
        t=0 0
        m=audio 5000 RTP/AVP 9 96 101
        a=rtpmap:96 opus/48000/2
        a=rtpmap:101 telephone-event/8000
    """)
    parse_offer(only_wideband)
    with pytest.raises(SdpNegotiationError, match="no common codec.*G722/8000, opus/48000"):
        answer(only_wideband, **OURS)


def test_srtp_only_is_a_negotiation_error():
    data = with_lines(ASTERISK, {"m=audio 10000 RTP/AVP 0 8 3 101": "m=audio 10000 RTP/SAVP 0 8 3 101"},
                      add=["a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"])
    with pytest.raises(SdpNegotiationError, match="SRTP"):
        parse_offer(data)


def test_srtp_with_a_plain_rtp_alternative_takes_the_plain_stream():
    data = with_lines(STATIC_ONLY, {"m=audio 7078 RTP/AVP 8 0": "m=audio 7078 RTP/SAVP 8 0"},
                      add=["m=audio 7080 RTP/AVP 0"])
    assert parse_offer(data).port == 7080
    lines = answer(data, **OURS).sdp.decode().split("\r\n")
    assert [line for line in lines if line.startswith("m=")] == ["m=audio 0 RTP/SAVP 8 0", "m=audio 40000 RTP/AVP 0"]


def test_a_rejected_audio_stream_is_a_negotiation_error():
    with pytest.raises(SdpNegotiationError, match="port 0"):
        parse_offer(with_lines(STATIC_ONLY, {"m=audio 7078 RTP/AVP 8 0": "m=audio 0 RTP/AVP 8 0"}))


def test_no_audio_stream_is_a_negotiation_error():
    with pytest.raises(SdpNegotiationError, match="no m=audio"):
        parse_offer(with_lines(STATIC_ONLY, {"m=audio 7078 RTP/AVP 8 0": "m=video 7078 RTP/AVP 96"}))


@pytest.mark.parametrize("data", [
    b"",
    b"\x00\xff\xfe garbage",
    b"INVITE sip:bob@example.com SIP/2.0\r\n",
    b"o=- 1 1 IN IP4 10.0.0.1\r\nv=0\r\n",
    with_lines(STATIC_ONLY, {"c=IN IP4 198.51.100.4": None}),
    with_lines(STATIC_ONLY, {"c=IN IP4 198.51.100.4": "c=IN IP4"}),
    with_lines(STATIC_ONLY, {"m=audio 7078 RTP/AVP 8 0": "m=audio 70000 RTP/AVP 8 0"}),
    with_lines(STATIC_ONLY, {"m=audio 7078 RTP/AVP 8 0": "m=audio 7078 RTP/AVP"}),
    with_lines(STATIC_ONLY, {"m=audio 7078 RTP/AVP 8 0": "m=audio 7078 RTP/AVP 8 PCMU"}),
    with_lines(STATIC_ONLY, add=["a=rtpmap:8 PCMA"]),
    with_lines(STATIC_ONLY, add=["a=ptime:soon"]),
    with_lines(STATIC_ONLY, add=["not an sdp line"]),
], ids=["empty", "binary", "sip", "v-not-first", "no-c", "short-c", "port", "no-formats", "format-name",
        "rtpmap", "ptime", "bad-line"])
def test_malformed_sdp_is_an_sdp_error(data):
    with pytest.raises(SdpError) as raised:
        parse_offer(data)
    assert not isinstance(raised.value, SdpNegotiationError)


SDP_LINES = st.sampled_from([
    "v=0", "o=- 1 1 IN IP4 10.0.0.1", "s=-", "c=IN IP4 10.0.0.1", "c=IN IP6 ::1", "c=IN IP4 0.0.0.0", "t=0 0",
    "m=audio 4000 RTP/AVP 0 8 101", "m=audio 0 RTP/AVP 0", "m=video 4002 RTP/AVP 96", "m=audio 1 RTP/SAVP 0",
    "a=rtpmap:101 telephone-event/8000", "a=rtpmap:0 PCMU/8000", "a=ptime:20", "a=sendonly", "a=inactive",
    "b=AS:64", "a=fmtp:101 0-16",
]) | st.text(max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_sdp_errors(data):
    try:
        parse_offer(data)
    except SdpError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(SDP_LINES, max_size=14), st.sampled_from(["\r\n", "\n"]))
def test_shuffled_sdp_lines_raise_only_sdp_errors_and_answers_parse_back(lines, line_end):
    data = line_end.join(["v=0"] + lines).encode("utf-8", errors="surrogatepass")
    try:
        result = answer(data, **OURS)
    except SdpError:
        return
    assert parse_offer(result.sdp).codecs[0] == result.codec
