"""The SIP user agent's logic, driven directly: messages and a clock in, datagrams and events out
(no sockets, no sleeps). The real peers (SIPp, baresip, Kamailio) are in test_sip_peers_*."""

import pytest

from parley.appliance.media.sip import sdp
from parley.appliance.media.sip.digest import Challenge, authorization
from parley.appliance.media.sip.message import Request, Response, parse
from parley.appliance.media.sip.transaction import T1, T2, TIMEOUT
from parley.appliance.media.sip.useragent import (CallConfirmed, CallEnded, DtmfInfo, IncomingCall, MediaChanged,
                                                  Refused, RegistrationState, SipSettings, TransferDone, UserAgent)

PHONE = ("127.0.0.1", 5062)
OFFER = sdp.offer(address="127.0.0.1", port=7000, session_id=1, session_version=1)


def invite(call_id="call-1", branch="z9hG4bK-1", body=OFFER, to_tag=None, cseq=1, method="INVITE", source=PHONE,
           extra=""):
    to = "<sip:parley@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    head = (f"{method} sip:parley@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: \"Alice\" <sip:alice@{source[0]}>;tag=alice-tag\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <sip:alice@{source[0]}:{source[1]}>\r\n"
            f"{extra}")
    if body:
        head += "Content-Type: application/sdp\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def sent(agent):
    return [(parse(send.data), send.addr) for send in agent.take_outbox()]


def statuses(agent):
    return [message.status for message, _ in sent(agent) if isinstance(message, Response)]


@pytest.fixture
def agent():
    return UserAgent(SipSettings(host="127.0.0.1", port=5060, max_calls=2))


def offered(agent, now=0.0, **kwargs):
    agent.receive(invite(**kwargs), PHONE, now)
    return agent.take_events()


def answered(agent, now=0.0, call_id="call-1"):
    offered(agent, now, call_id=call_id, branch=f"z9hG4bK-{call_id}")
    agent.take_outbox()
    answer = agent.accept(call_id, 20000, now)
    [(ok, _)] = sent(agent)
    return answer, ok


def in_dialog(ok, method, branch, cseq, body=b"", extra=""):
    to_tag = ok.headers.get("To").split("tag=")[1]
    return invite(call_id=ok.headers.get("Call-ID"), branch=branch, body=body, to_tag=to_tag, cseq=cseq,
                  method=method, extra=extra)


def test_an_invite_is_answered_with_trying_ringing_then_ok_with_the_sdp_answer(agent):
    [event] = offered(agent)
    assert isinstance(event, IncomingCall) and event.call_id == "call-1" and "alice" in event.caller
    assert [c.name for c in event.offer.codecs][:2] == ["PCMU", "PCMA"]
    assert statuses(agent) == [100, 180]
    answer = agent.accept("call-1", 20000, 0.1)
    [(ok, addr)] = sent(agent)
    assert ok.status == 200 and addr == PHONE
    assert ok.headers.get("Content-Type") == "application/sdp"
    assert sdp.parse_offer(ok.body).port == 20000 and answer.codec.name == "PCMU"
    assert ok.headers.get("To").count("tag=") == 1 and "parley@127.0.0.1:5060" in ok.headers.get("Contact")


def test_the_ok_is_retransmitted_until_the_ack_and_the_ack_confirms_the_call(agent):
    _, ok = answered(agent)
    agent.tick(T1)
    assert statuses(agent) == [200]
    agent.tick(T1 + 2 * T1)
    assert statuses(agent) == [200]
    agent.receive(in_dialog(ok, "ACK", "z9hG4bK-ack", 1), PHONE, 2.0)
    assert agent.take_events() == [CallConfirmed("call-1")]
    agent.tick(10.0)
    assert statuses(agent) == []


def test_a_call_never_acked_is_hung_up_after_64_t1(agent):
    _, ok = answered(agent)
    now = 0.0
    while (deadline := agent.next_deadline()) is not None and deadline <= TIMEOUT + T2 + 1:
        now = deadline
        agent.tick(now)
    messages = [m for m, _ in sent(agent)]
    assert sum(1 for m in messages if isinstance(m, Response) and m.status == 200) >= 7
    assert any(isinstance(m, Request) and m.method == "BYE" for m in messages)
    assert CallEnded("call-1", "no-ack") in agent.take_events()


def test_a_retransmitted_invite_gets_the_last_response_again_and_no_second_call(agent):
    offered(agent)
    agent.take_outbox()
    assert offered(agent, 0.5) == []
    assert statuses(agent) == [180]


def test_the_invite_sent_again_after_the_ok_gets_the_ok_again_not_a_second_call(agent):
    _, ok = answered(agent)
    agent.receive(invite(call_id="call-1", branch="z9hG4bK-call-1"), PHONE, 0.3)
    [(again, _)] = sent(agent)
    assert again.status == 200 and again.headers.get("To") == ok.headers.get("To")
    assert agent.take_events() == [] and len(agent.dialogs) == 1


def test_bye_ends_the_call_and_a_bye_for_no_call_gets_481(agent):
    _, ok = answered(agent)
    agent.receive(in_dialog(ok, "ACK", "z9hG4bK-ack", 1), PHONE, 0.1)
    agent.take_events()
    agent.receive(in_dialog(ok, "BYE", "z9hG4bK-bye", 2), PHONE, 1.0)
    assert statuses(agent) == [200]
    assert agent.take_events() == [CallEnded("call-1", "bye")]
    agent.receive(invite(call_id="nope", method="BYE", body=b"", to_tag="x", branch="z9hG4bK-b2"), PHONE, 1.1)
    assert statuses(agent) == [481]


def test_cancel_before_the_answer_gets_200_and_the_invite_487_then_the_ack_is_absorbed(agent):
    offered(agent)
    agent.take_outbox()
    agent.receive(invite(method="CANCEL", body=b""), PHONE, 0.2)
    assert sorted(statuses(agent)) == [200, 487]
    assert agent.take_events() == [CallEnded("call-1", "cancel")]
    assert agent.accept("call-1", 20000, 0.3) is None
    agent.receive(invite(method="ACK", body=b"", to_tag="whatever"), PHONE, 0.3)
    agent.tick(0.3 + T1 * 2)
    assert statuses(agent) == []


def test_an_unanswered_error_is_retransmitted_until_acked(agent):
    agent.receive(invite(body=sdp.offer(address="127.0.0.1", port=7000, session_id=1, session_version=1,
                                        codecs=("PCMA",)).replace(b"PCMA", b"G722").replace(b" 8 ", b" 9 ")
                         .replace(b"rtpmap:8", b"rtpmap:9")), PHONE, 0.0)
    assert statuses(agent) == [488]
    agent.tick(T1)
    agent.tick(3 * T1)
    assert statuses(agent) == [488, 488]
    agent.receive(invite(method="ACK", body=b"", to_tag="t"), PHONE, 2.0)
    agent.tick(2.0 + T2)
    assert statuses(agent) == []


def test_policy_forbidden_source_busy_and_no_common_codec():
    agent = UserAgent(SipSettings(allow=("10.1.2.3/32",), max_calls=1))
    agent.receive(invite(), PHONE, 0.0)
    assert statuses(agent) == [403]
    [refused] = agent.take_events()
    assert isinstance(refused, Refused) and refused.status == 403

    agent = UserAgent(SipSettings(max_calls=1))
    offered(agent, call_id="a", branch="z9hG4bK-a")
    agent.take_outbox()
    agent.receive(invite(call_id="b", branch="z9hG4bK-b"), PHONE, 0.1)
    assert statuses(agent) == [486]


def test_unknown_method_gets_501_known_unserved_405_options_200(agent):
    agent.receive(invite(method="FOO", body=b"", branch="z9hG4bK-f"), PHONE, 0.0)
    agent.receive(invite(method="SUBSCRIBE", body=b"", branch="z9hG4bK-s"), PHONE, 0.0)
    agent.receive(invite(method="OPTIONS", body=b"", branch="z9hG4bK-o"), PHONE, 0.0)
    responses = [m for m, _ in sent(agent)]
    assert [r.status for r in responses] == [501, 405, 200]
    assert "INVITE" in responses[2].headers.get("Allow")


@pytest.mark.parametrize("data", [
    b"INVITE sip:parley@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-x\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:p@q>\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",  # no Call-ID
    b"INVITE sip:parley@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-x\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:p@q>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",  # CSeq method
    b"INVITE sip:parley@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-x\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:p@q>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 900\r\n\r\nv=0",
])
def test_a_malformed_request_gets_400_and_nothing_else_changes(agent, data):
    agent.receive(data, PHONE, 0.0)
    [reply] = agent.take_outbox()
    assert reply.data.startswith(b"SIP/2.0 400 Bad Request\r\n") and reply.addr == PHONE
    assert b"branch=z9hG4bK-x" in reply.data and b"Warning: 399 parley" in reply.data
    assert agent.dialogs == {} and agent.counters["malformed"] == 1


@pytest.mark.parametrize("data", [b"\x00\x01\x02garbage", b"", b"SIP/2.0 200 OK\r\n\r\n", b"\xff" * 3000,
                                  b"INVITE\r\n\r\n"])
def test_junk_gets_no_answer_and_no_exception(agent, data):
    agent.receive(data, PHONE, 0.0)
    assert agent.take_outbox() == [] and agent.dialogs == {}


def test_a_flooding_source_is_dropped_past_its_burst():
    agent = UserAgent(SipSettings(rate_per_s=10, rate_burst=20))
    for i in range(100):
        agent.receive(invite(method="OPTIONS", body=b"", branch=f"z9hG4bK-{i}"), PHONE, 0.0)
    assert len(agent.take_outbox()) == 20 and agent.counters["rate_limited"] == 80
    agent.receive(invite(method="OPTIONS", body=b"", branch="z9hG4bK-later"), PHONE, 1.0)
    assert statuses(agent) == [200]


def test_reinvite_to_hold_and_resume_answers_the_direction_and_reports_it(agent):
    _, ok = answered(agent)
    agent.receive(in_dialog(ok, "ACK", "z9hG4bK-ack", 1), PHONE, 0.1)
    agent.take_events()
    hold = sdp.offer(address="127.0.0.1", port=7000, session_id=1, session_version=2, direction="sendonly")
    agent.receive(in_dialog(ok, "INVITE", "z9hG4bK-hold", 2, body=hold), PHONE, 1.0)
    [(reply, _)] = sent(agent)
    assert reply.status == 200 and b"a=recvonly" in reply.body
    [changed] = agent.take_events()
    assert isinstance(changed, MediaChanged) and changed.answer.direction == "recvonly"
    resume = sdp.offer(address="127.0.0.1", port=7000, session_id=1, session_version=3)
    agent.receive(in_dialog(ok, "INVITE", "z9hG4bK-resume", 3, body=resume), PHONE, 2.0)
    [(reply, _)] = sent(agent)
    assert b"a=sendrecv" in reply.body
    assert agent.take_events()[0].answer.direction == "sendrecv"


def test_hang_up_sends_bye_in_the_dialog_and_retransmits_it_until_answered(agent):
    _, ok = answered(agent)
    agent.receive(in_dialog(ok, "ACK", "z9hG4bK-ack", 1), PHONE, 0.1)
    agent.take_events()
    agent.hang_up("call-1", 1.0)
    [(bye, addr)] = sent(agent)
    assert bye.method == "BYE" and addr == PHONE and str(bye.uri).startswith("sip:alice@127.0.0.1:5062")
    assert bye.headers.get("To").endswith("tag=alice-tag") and bye.headers.get("From") == ok.headers.get("To")
    agent.tick(1.0 + T1)
    [(again, _)] = sent(agent)
    assert again.method == "BYE"
    agent.receive(Response(200, "OK", bye.headers.copy(), b"").to_bytes(), PHONE, 1.7)
    agent.tick(10.0)
    assert sent(agent) == []
    assert agent.take_events() == [CallEnded("call-1", "hung-up")]


def _notify(ok, refer, status_line, branch):
    body = status_line.encode()
    return in_dialog(ok, "NOTIFY", branch, 10, body=b"", extra="Event: refer\r\nSubscription-State: active\r\n"
                     "Content-Type: message/sipfrag\r\n").replace(b"Content-Length: 0\r\n\r\n",
                                                                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def test_transfer_refers_with_the_handoff_id_and_succeeds_on_the_final_notify(agent):
    _, ok = answered(agent)
    agent.receive(in_dialog(ok, "ACK", "z9hG4bK-ack", 1), PHONE, 0.1)
    agent.take_events()
    agent.transfer("call-1", "2000", 1.0, handoff_id=42)
    [(refer, _)] = sent(agent)
    assert refer.method == "REFER" and refer.headers.get("X-Parley-Handoff") == "42"
    assert refer.headers.get("Refer-To") == "<sip:2000@127.0.0.1?X-Parley-Handoff=42>"
    agent.receive(Response(202, "Accepted", refer.headers.copy(), b"").to_bytes(), PHONE, 1.1)
    agent.receive(_notify(ok, refer, "SIP/2.0 100 Trying", "z9hG4bK-n1"), PHONE, 1.2)
    assert statuses(agent) == [200] and agent.take_events() == []
    agent.receive(_notify(ok, refer, "SIP/2.0 200 OK", "z9hG4bK-n2"), PHONE, 2.0)
    assert agent.take_events() == [TransferDone("call-1", True, "the transferee reported SIP/2.0 200 OK")]


def test_a_refused_refer_or_no_notify_fails_the_transfer(agent):
    _, ok = answered(agent)
    agent.receive(in_dialog(ok, "ACK", "z9hG4bK-ack", 1), PHONE, 0.1)
    agent.take_events()
    agent.transfer("call-1", "sip:desk@127.0.0.1", 1.0)
    [(refer, _)] = sent(agent)
    agent.receive(Response(603, "Decline", refer.headers.copy(), b"").to_bytes(), PHONE, 1.1)
    [done] = agent.take_events()
    assert not done.ok and "603" in done.detail

    _, ok = answered(agent, call_id="call-2")
    agent.receive(in_dialog(ok, "ACK", "z9hG4bK-ack2", 1), PHONE, 0.1)
    agent.transfer("call-2", "2000", 5.0)
    [(refer, _)] = sent(agent)
    agent.receive(Response(202, "Accepted", refer.headers.copy(), b"").to_bytes(), PHONE, 5.1)
    agent.tick(5.0 + 31)
    assert [e for e in agent.take_events() if isinstance(e, TransferDone)] == [
        TransferDone("call-2", False, "no NOTIFY from the transferee")]


def test_info_dtmf_relay_is_a_key_press(agent):
    _, ok = answered(agent)
    body = b"Signal=5\r\nDuration=160\r\n"
    message = in_dialog(ok, "INFO", "z9hG4bK-info", 2, extra="Content-Type: application/dtmf-relay\r\n")
    message = message.replace(b"Content-Length: 0\r\n\r\n", f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    agent.receive(message, PHONE, 1.0)
    assert statuses(agent) == [200]
    assert agent.take_events() == [DtmfInfo("call-1", "5")]


def test_register_answers_the_digest_challenge_and_refreshes_before_expiry():
    agent = UserAgent(SipSettings(registrar=("127.0.0.1", 5070), username="parley", password="secret",
                                  domain="pbx.test", register_expires=120))
    agent.start(0.0)
    [(first, addr)] = sent(agent)
    assert first.method == "REGISTER" and addr == ("127.0.0.1", 5070) and "Authorization" not in first.headers
    challenge = 'Digest realm="pbx.test", nonce="abc123", qop="auth", algorithm=MD5'
    unauthorized = Response(401, "Unauthorized", first.headers.copy(), b"")
    unauthorized.headers.add("WWW-Authenticate", challenge)
    agent.receive(unauthorized.to_bytes(), ("127.0.0.1", 5070), 0.1)
    [(second, _)] = sent(agent)
    header = second.headers.get("Authorization")
    assert header is not None and 'username="parley"' in header and 'nonce="abc123"' in header
    fields = dict(part.strip().split("=", 1) for part in header[len("Digest "):].split(","))
    expected = authorization(Challenge.parse(challenge), method="REGISTER", uri="sip:pbx.test", username="parley",
                             password="secret", cnonce=fields["cnonce"].strip('"'), nc=int(fields["nc"], 16))
    assert header == expected
    granted = Response(200, "OK", second.headers.copy(), b"")
    granted.headers.set("Contact", "<sip:parley@127.0.0.1:5060>;expires=60")
    agent.receive(granted.to_bytes(), ("127.0.0.1", 5070), 0.2)
    assert agent.take_events() == [RegistrationState(True, 200, 60)]
    agent.tick(0.2 + 31)
    [(refresh, _)] = sent(agent)
    assert refresh.method == "REGISTER"


def test_a_wrong_password_is_reported_not_retried_in_a_loop():
    agent = UserAgent(SipSettings(registrar=("127.0.0.1", 5070), username="parley", password="wrong"))
    agent.start(0.0)
    for now in (0.1, 0.2):
        [(request, _)] = sent(agent)
        refusal = Response(401, "Unauthorized", request.headers.copy(), b"")
        refusal.headers.add("WWW-Authenticate", 'Digest realm="x", nonce="same"')
        agent.receive(refusal.to_bytes(), ("127.0.0.1", 5070), now)
    assert agent.take_events() == [RegistrationState(False, 401)]
    assert sent(agent) == []
