"""Digest authentication as a registering client: RFC 2617 and RFC 7616 worked examples, and an
independent reference for every algorithm and qop we answer."""

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.appliance.media.sip.digest import Challenge, DigestError, authorization

RFC_2617_CHALLENGE = ('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                      'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
RFC_7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC_7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def rfc_7616_challenge(algorithm):
    return (f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
            f'nonce="{RFC_7616_NONCE}", opaque="{RFC_7616_OPAQUE}"')


def fields(header):
    """The parameters of an Authorization value, read with a regex of the test's own."""
    assert header.startswith("Digest ")
    return {name: quoted if quoted else bare
            for name, quoted, bare in re.findall(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))', header[7:])}


def reference_response(hash_name, *, username, realm, password, method, uri, nonce, cnonce=None, nc=None,
                       qop=None, session=False):
    """RFC 7616 section 3.4.1, written out step by step."""
    def h(text):
        return hashlib.new(hash_name, text.encode()).hexdigest()

    ha1 = h(f"{username}:{realm}:{password}")
    if session:
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    if qop:
        return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return h(f"{ha1}:{nonce}:{ha2}")


def test_the_rfc_2617_worked_example_gives_its_published_response():
    header = authorization(Challenge.parse(RFC_2617_CHALLENGE), method="GET", uri="/dir/index.html",
                           username="Mufasa", password="Circle Of Life", cnonce="0a4f113b", nc=1)
    assert fields(header) == {
        "username": "Mufasa", "realm": "testrealm@host.com", "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "uri": "/dir/index.html", "response": "6629fae49393a05397450978507c4ef1", "algorithm": "MD5",
        "cnonce": "0a4f113b", "opaque": "5ccc069c403ebaf9f0171e9517f40e41", "qop": "auth", "nc": "00000001",
    }


@pytest.mark.parametrize("algorithm, response", [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_the_rfc_7616_worked_examples_give_their_published_responses(algorithm, response):
    header = authorization(Challenge.parse(rfc_7616_challenge(algorithm)), method="GET", uri="/dir/index.html",
                           username="Mufasa", password="Circle of Life", cnonce=RFC_7616_CNONCE)
    answer = fields(header)
    assert answer["response"] == response
    assert (answer["algorithm"], answer["qop"], answer["nc"]) == (algorithm, "auth", "00000001")
    assert answer["opaque"] == RFC_7616_OPAQUE


@pytest.mark.parametrize("algorithm, hash_name, session", [
    ("MD5", "md5", False), ("MD5-sess", "md5", True), ("SHA-256", "sha256", False), ("SHA-256-sess", "sha256", True),
])
@pytest.mark.parametrize("qop", ["auth", None])
def test_every_algorithm_and_qop_matches_an_independent_reference(algorithm, hash_name, session, qop):
    offered = ', qop="auth"' if qop else ""
    challenge = Challenge.parse(f'Digest realm="asterisk", nonce="4f1a2b3c", algorithm={algorithm}{offered}')
    header = authorization(challenge, method="REGISTER", uri="sip:pbx.example.com", username="1012",
                           password="s3cret", cnonce="deadbeef", nc=3)
    answer = fields(header)
    assert answer["response"] == reference_response(
        hash_name, username="1012", realm="asterisk", password="s3cret", method="REGISTER",
        uri="sip:pbx.example.com", nonce="4f1a2b3c", cnonce="deadbeef", nc="00000003", qop=qop, session=session)
    assert answer["algorithm"] == algorithm
    assert ("qop" in answer, "nc" in answer) == (bool(qop), bool(qop))
    assert ("cnonce" in answer) == bool(qop or session)


def test_a_challenge_without_qop_is_answered_rfc_2069_style():
    header = authorization(Challenge.parse('Digest realm="pbx", nonce="abc"'), method="REGISTER",
                           uri="sip:pbx", username="u", password="p")
    answer = fields(header)
    assert "qop" not in answer and "cnonce" not in answer and "opaque" not in answer
    assert answer["response"] == reference_response("md5", username="u", realm="pbx", password="p",
                                                    method="REGISTER", uri="sip:pbx", nonce="abc")


def test_a_fresh_cnonce_is_made_when_none_is_given():
    challenge = Challenge.parse('Digest realm="pbx", nonce="abc", qop="auth"')
    first = fields(authorization(challenge, method="REGISTER", uri="sip:pbx", username="u", password="p"))
    second = fields(authorization(challenge, method="REGISTER", uri="sip:pbx", username="u", password="p"))
    assert first["cnonce"] and first["cnonce"] != second["cnonce"]
    assert first["response"] == reference_response("md5", username="u", realm="pbx", password="p", method="REGISTER",
                                                   uri="sip:pbx", nonce="abc", cnonce=first["cnonce"],
                                                   nc="00000001", qop="auth")


def test_quotes_in_credentials_are_escaped():
    header = authorization(Challenge.parse(r'Digest realm="the \"lab\"", nonce="n"'), method="REGISTER",
                           uri="sip:pbx", username='a"b', password="p")
    assert 'username="a\\"b"' in header
    assert 'realm="the \\"lab\\""' in header


def test_challenges_parse_as_pbxes_write_them():
    challenge = Challenge.parse('digest  realm="asterisk",nonce="1a2b",algorithm="md5-sess",qop="AUTH, auth-int",'
                                'stale=TRUE,opaque="xyz",domain="sip:pbx", userhash=false')
    assert challenge == Challenge(realm="asterisk", nonce="1a2b", algorithm="MD5-sess", qop=("auth", "auth-int"),
                                  opaque="xyz", stale=True)
    plain = Challenge.parse('Digest realm="r", nonce="n"')
    assert (plain.algorithm, plain.qop, plain.opaque, plain.stale) == ("MD5", (), None, False)
    assert plain.supported


@pytest.mark.parametrize("header, fault", [
    ('Basic realm="r"', "not a Digest challenge"),
    ("Digest", "no realm"),
    ('Digest realm="r"', "no nonce"),
    ('Digest nonce="n"', "no realm"),
    ('Digest realm="r", nonce="n", broken', "bad challenge parameter"),
    ('Digest realm="unterminated, nonce="n"', "bad challenge parameter"),
    (None, "no challenge"),
])
def test_unreadable_challenges_are_digest_errors(header, fault):
    with pytest.raises(DigestError, match=fault):
        Challenge.parse(header)


@pytest.mark.parametrize("header, fault", [
    ('Digest realm="r", nonce="n", algorithm=SHA-512-256', "not supported"),
    ('Digest realm="r", nonce="n", algorithm=AKAv1-MD5', "not supported"),
    ('Digest realm="r", nonce="n", qop="auth-int"', "only 'auth'"),
])
def test_challenges_we_cannot_answer_are_refused_and_marked_unsupported(header, fault):
    challenge = Challenge.parse(header)
    assert not challenge.supported
    with pytest.raises(DigestError, match=fault):
        authorization(challenge, method="REGISTER", uri="sip:pbx", username="u", password="p")


@pytest.mark.parametrize("nc", [0, 2**32])
def test_the_nonce_count_must_fit_eight_hex_digits(nc):
    with pytest.raises(DigestError, match="nonce count"):
        authorization(Challenge.parse('Digest realm="r", nonce="n", qop="auth"'), method="REGISTER", uri="sip:pbx",
                      username="u", password="p", nc=nc)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_header_text_gives_a_challenge_or_a_digest_error(text):
    for header in (text, "Digest " + text, 'Digest realm="r", nonce="n", ' + text):
        try:
            Challenge.parse(header)
        except DigestError:
            pass
