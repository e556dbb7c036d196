"""SIP messages: the RFC 4475 torture tests, round trips, fuzzing, stream framing, responses."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.appliance.media.sip.message import (
    MAX_UDP_MESSAGE,
    Headers,
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    StreamFramer,
    Via,
    make_response,
    parse,
    parse_cseq,
)


def sdp(origin, connection=None, timing=b"0 0"):
    """The SDP body most RFC 4475 messages carry, with their addresses."""
    return (b"v=0\r\no=mhandley 29739 7272939 IN IP4 " + origin + b"\r\ns=-\r\nc=IN IP4 " + (connection or origin)
            + b"\r\nt=" + timing + b"\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n")


# RFC 4475 section 3.1.1: valid messages.

WSINV = (
    b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
    b"TO :\r\n"
    b" sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
    b'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n'
    b"  ;\r\n"
    b"  tag = 98asjd8\r\n"
    b"MaX-fOrWaRdS: 0068\r\n"
    b"Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
    b"Content-Length   : 150\r\n"
    b"cseq: 0009\r\n"
    b"  INVITE\r\n"
    b"Via  : SIP  /   2.0\r\n"
    b" /UDP\r\n"
    b"    192.0.2.2;branch=390skdjuw\r\n"
    b"s :\r\n"
    b"NewFangledHeader:   newfangled value\r\n"
    b" continued newfangled value\r\n"
    b"UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Route:\r\n"
    b" <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n"
    b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
    b"  branch  =   z9hG4bK9ikj8  ,\r\n"
    b" SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
    b" z9hG4bK30239\r\n"
    b'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\r\n'
    b"      newvalue ;\r\n"
    b"  secondparam ; q = 0.33\r\n"
    b"\r\n" + sdp(b"192.0.2.3", b"192.0.2.4")
)
INTMETH = (
    b"!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    b":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\r\n"
    b'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*@example.com>\r\n'
    b"From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="
    b'"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9"'
    b";tag=_token~1'+`*%!-.\r\n"
    b"Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\r\n"
    b"CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\r\n"
    b"Max-Forwards: 255\r\n"
    b"extensionHeader-!.%*+_`'~:\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
ESC01 = (
    b"INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n"
    b"To: sip:%75se%72@example.com\r\n"
    b"From: <sip:I%20have%20spaces@example.net>;tag=938\r\n"
    b"Max-Forwards: 87\r\n"
    b"i: esc01.239409asdfakjkn23onasd0-3234\r\n"
    b"CSeq: 234234 INVITE\r\n"
    b"Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\r\n"
    b"C: application/sdp\r\n"
    b"Contact:\r\n"
    b"  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\r\n"
    b"Content-Length: 150\r\n"
    b"\r\n" + sdp(b"192.0.2.1")
)
ESCNULL = (
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"To: sip:null-%00-null@example.com\r\n"
    b"From: sip:null-%00-null@example.com;tag=839923423\r\n"
    b"Max-Forwards: 70\r\n"
    b"Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\r\n"
    b"CSeq: 14398234 REGISTER\r\n"
    b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\r\n"
    b"Contact: <sip:%00@host5.example.com>\r\n"
    b"Contact: <sip:%00%00@host5.example.com>\r\n"
    b"L:0\r\n"
    b"\r\n"
)
ESC02 = (
    b"RE%47IST%45R sip:registrar.example.com SIP/2.0\r\n"
    b'To: "%Z%45" <sip:resource@example.com>\r\n'
    b'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23\r\n'
    b"Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\r\n"
    b"Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234\r\n"
    b"CSeq: 29344 RE%47IST%45R\r\n"
    b"Max-Forwards: 70\r\n"
    b"Contact: <sip:alias1@host1.example.com>\r\n"
    b"C%6Fntact: <sip:alias2@host2.example.com>\r\n"
    b"Contact: <sip:alias3@host3.example.com>\r\n"
    b"l: 0\r\n"
    b"\r\n"
)
LWSDISP = (
    b"OPTIONS sip:user@example.com SIP/2.0\r\n"
    b"To: sip:user@example.com\r\n"
    b"From: caller<sip:caller@example.com>;tag=323\r\n"
    b"Max-Forwards: 70\r\n"
    b"Call-ID: lwsdisp.1234abcd@funky.example.com\r\n"
    b"CSeq: 60 OPTIONS\r\n"
    b"Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\r\n"
    b"l: 0\r\n"
    b"\r\n"
)
LONGREQ = (
    b"INVITE sip:user@example.com SIP/2.0\r\n"
    b'To: "I have a user name of ' + b"extreme " * 10 + b'proportion"<sip:user@example.com:6000;unknownparam1=very'
    + b"long" * 20 + b"value;longparam" + b"name" * 25 + b"=shortvalue;very" + b"long" * 25
    + b"ParameterNameWithNoValue>\r\n"
    b"F: sip:" + b"amazinglylongcallername" * 5 + b"@example.net;tag=12" + b"982" * 50 + b"424;unknownheaderparam"
    + b"name" * 20 + b"=unknowheaderparam" + b"value" * 15 + b";unknownValueless" + b"paramname" * 10 + b"\r\n"
    b"Call-ID: longreq.one" + b"really" * 20 + b"longcallid\r\n"
    b"CSeq: 3882340 INVITE\r\n"
    b"Unknown-" + b"Long" * 20 + b"-Name:unknown-" + b"long" * 20 + b"-value;unknown-" + b"long" * 20
    + b"-parameter-name =unknown-" + b"long" * 20 + b"-parameter-value\r\n"
    b"Via: SIP/2.0/TCP sip33.example.com\r\n"
    b"v: SIP/2.0/TCP sip32.example.com\r\n"
    b"V: SIP/2.0/TCP sip31.example.com\r\n"
    b"Via: SIP/2.0/TCP sip30.example.com\r\n"
    b"ViA: SIP/2.0/TCP sip29.example.com\r\n"
    b"VIa: SIP/2.0/TCP sip28.example.com\r\n"
    b"VIA: SIP/2.0/TCP sip27.example.com\r\n"
    b"via: SIP/2.0/TCP sip26.example.com\r\n"
    b"viA: SIP/2.0/TCP sip25.example.com\r\n"
    b"vIa: SIP/2.0/TCP sip24.example.com\r\n"
    b"vIA: SIP/2.0/TCP sip23.example.com\r\n"
    b"V :  SIP/2.0/TCP sip22.example.com\r\n"
    b"v :  SIP/2.0/TCP sip21.example.com\r\n"
    b"V  : SIP/2.0/TCP sip20.example.com\r\n"
    b"v  : SIP/2.0/TCP sip19.example.com\r\n"
    b"Via : SIP/2.0/TCP sip18.example.com\r\n"
    b"Via  : SIP/2.0/TCP sip17.example.com\r\n"
    + b"".join(b"Via: SIP/2.0/TCP sip%d.example.com\r\n" % n for n in range(16, 0, -1))
    + b"Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very" + b"long" * 50 + b"branchvalue\r\n"
    b"Max-Forwards: 70\r\n"
    b"Contact: <sip:" + b"amazinglylongcallername" * 5 + b"@host5.example.net>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"l: 150\r\n"
    b"\r\n" + sdp(b"192.0.2.1")
)
DBLREQ = (
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"To: sip:j.user@example.com\r\n"
    b"From: sip:j.user@example.com;tag=43251j3j324\r\n"
    b"Max-Forwards: 8\r\n"
    b"I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\r\n"
    b"Contact: sip:j.user@host.example.com\r\n"
    b"CSeq: 8 REGISTER\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
    b"INVITE sip:joe@example.com SIP/2.0\r\n"
    b"t: sip:joe@example.com\r\n"
    b"From: sip:caller@example.net;tag=141334\r\n"
    b"Max-Forwards: 8\r\n"
    b"Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15\r\n"
    b"CSeq: 8 INVITE\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 150\r\n"
    b"\r\n" + sdp(b"192.0.2.15").replace(b"m=video", b"m =video")
)
SEMIURI = (
    b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\r\n"
    b"To: sip:j_user@example.com\r\n"
    b"From: sip:caller@example.org;tag=33242\r\n"
    b"Max-Forwards: 3\r\n"
    b"Call-ID: semiuri.0ha0isndaksdj\r\n"
    b"CSeq: 8 OPTIONS\r\n"
    b"Accept: application/sdp, application/pkcs7-mime,\r\n"
    b"        multipart/mixed, multipart/signed,\r\n"
    b"        message/sip, message/sipfrag\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\r\n"
    b"l: 0\r\n"
    b"\r\n"
)
UNREASON_PHRASE = "= 2**3 * 5**2 но сто девяносто девять - простое"
UNREASON = (
    b"SIP/2.0 200 " + UNREASON_PHRASE.encode() + b"\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n"
    b"Call-ID: unreason.1234ksdfak3j2erwedfsASdf\r\n"
    b"CSeq: 35 INVITE\r\n"
    b"From: sip:user@example.com;tag=11141343\r\n"
    b"To: sip:user@example.edu;tag=2229\r\n"
    b"Content-Length: 154\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Contact: <sip:user@host198.example.com>\r\n"
    b"\r\n" + sdp(b"192.0.2.198")
)
NOREASON = (
    b"SIP/2.0 100 \r\n"
    b"Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n"
    b"Call-ID: noreason.asndj203insdf99223ndf\r\n"
    b"CSeq: 35 INVITE\r\n"
    b"From: <sip:user@example.com>;tag=39ansfi3\r\n"
    b"To: <sip:user@example.edu>;tag=902jndnke3\r\n"
    b"Content-Length: 0\r\n"
    b"Contact: <sip:user@host105.example.com>\r\n"
    b"\r\n"
)
VALID = {"wsinv": WSINV, "intmeth": INTMETH, "esc01": ESC01, "escnull": ESCNULL, "esc02": ESC02,
         "lwsdisp": LWSDISP, "longreq": LONGREQ, "dblreq": DBLREQ, "semiuri": SEMIURI, "unreason": UNREASON,
         "noreason": NOREASON}

# RFC 4475 section 3.1.2: invalid messages, each with what the error must name.

INVALID = {
    "badinv01": (
        b"INVITE sip:user@example.com SIP/2.0\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=134161461246\r\n"
        b"Max-Forwards: 7\r\n"
        b"Call-ID: badinv01.0ha0isndaksdjasdf3234nas\r\n"
        b"CSeq: 8 INVITE\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n"
        b'Contact: "Joe" <sip:joe@example.org>;;;;\r\n'
        b"Content-Length: 152\r\n"
        b"Content-Type: application/sdp\r\n"
        b"\r\n" + sdp(b"192.0.2.15"), "Via"),
    "clerr": (
        b"INVITE sip:user@example.com SIP/2.0\r\n"
        b"Max-Forwards: 80\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=93942939o2\r\n"
        b"Contact: <sip:caller@hungry.example.net>\r\n"
        b"Call-ID: clerr.0ha0isndaksdjweiafasdk3\r\n"
        b"CSeq: 8 INVITE\r\n"
        b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 9999\r\n"
        b"\r\n" + sdp(b"192.0.2.155"), "Content-Length 9999"),
    "ncl": (
        b"INVITE sip:user@example.com SIP/2.0\r\n"
        b"Max-Forwards: 254\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=32394234\r\n"
        b"Call-ID: ncl.0ha0isndaksdj2193423r542w35\r\n"
        b"CSeq: 0 INVITE\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw\r\n"
        b"Contact: <sip:caller@example53.example.net>\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: -999\r\n"
        b"\r\n" + sdp(b"192.0.2.53"), "Content-Length"),
    "scalar02": (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\r\n"
        b"To: <sip:user@example.com>\r\n"
        b"From: <sip:user@example.com>;tag=239232jh3\r\n"
        b"CSeq: 36893488147419103232 REGISTER\r\n"
        b"Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\r\n"
        b"Max-Forwards: 300\r\n"
        b"Expires: 1" + b"0" * 100 + b"\r\n"
        b"Contact: <sip:user@host129.example.com>\r\n"
        b"  ;expires=280297596632815\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n", "CSeq"),
    "scalarlg": (
        b"SIP/2.0 503 Service Unavailable\r\n"
        b"Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129\r\n"
        b"To: <sip:user@example.com>\r\n"
        b"From: <sip:other@example.net>;tag=2easdjfejw\r\n"
        b"CSeq: 9292394834772304023312 OPTIONS\r\n"
        b"Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r\r\n"
        b"Retry-After: 949302838503028349304023988\r\n"
        b'Warning: 1812 overture "In Progress"\r\n'
        b"Content-Length: 0\r\n"
        b"\r\n", "CSeq"),
    "quotbal": (
        b"INVITE sip:user@example.com SIP/2.0\r\n"
        b'To: "Mr. J. User <sip:j.user@example.com>\r\n'
        b"From: sip:caller@example.net;tag=93334\r\n"
        b"Max-Forwards: 10\r\n"
        b"Call-ID: quotbal.aksdj\r\n"
        b"Contact: <sip:caller@host59.example.net>\r\n"
        b"CSeq: 8 INVITE\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 152\r\n"
        b"\r\n" + sdp(b"192.0.2.15") + b"\r\n\r\n", "unterminated quoted string"),
    "ltgtruri": (
        b"INVITE <sip:user@example.com> SIP/2.0\r\n"
        b"To: sip:user@example.com\r\n"
        b"From: sip:caller@example.net;tag=39291\r\n"
        b"Max-Forwards: 23\r\n"
        b"Call-ID: ltgtruri.1@192.0.2.5\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.5\r\n"
        b"Contact: <sip:caller@host5.example.net>\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 159\r\n"
        b"\r\n" + sdp(b"192.0.2.5", timing=b"3149328700 0"), "Request-URI"),
    "lwsruri": (
        b"INVITE sip:user@example.com; lr SIP/2.0\r\n"
        b"To: sip:user@example.com;tag=3xfe-9921883-z9f\r\n"
        b"From: sip:caller@example.net;tag=231413434\r\n"
        b"Max-Forwards: 5\r\n"
        b"Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423\r\n"
        b"CSeq: 2130706432 INVITE\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395\r\n"
        b"Contact: <sip:caller@host1.example.net>\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 159\r\n"
        b"\r\n" + sdp(b"192.0.2.1", timing=b"3149328700 0"), "request line"),
    "lwsstart": (
        b"INVITE  sip:user@example.com  SIP/2.0\r\n"
        b"Max-Forwards: 8\r\n"
        b"To: sip:user@example.com\r\n"
        b"From: sip:caller@example.net;tag=8814\r\n"
        b"Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com\r\n"
        b"CSeq: 1893884 INVITE\r\n"
        b"Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923\r\n"
        b"Contact: <sip:caller@host1.example.net>\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 150\r\n"
        b"\r\n" + sdp(b"192.0.2.1"), "request line"),
    "trws": (
        b"OPTIONS sip:remote-target@example.com SIP/2.0  \r\n"
        b"Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK299342093\r\n"
        b"To: <sip:remote-target@example.com>\r\n"
        b"From: <sip:local-resource@example.com>;tag=329429089\r\n"
        b"Call-ID: trws.oicu34958239neffasdhr2345r\r\n"
        b"Accept: application/sdp\r\n"
        b"CSeq: 238923 OPTIONS\r\n"
        b"Max-Forwards: 70\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n", "request line"),
    "escruri": (
        b"INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\r\n"
        b"To: sip:user@example.com\r\n"
        b"From: sip:caller@example.net;tag=341518\r\n"
        b"Max-Forwards: 7\r\n"
        b"Contact: <sip:caller@host39923.example.net>\r\n"
        b"Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5\r\n"
        b"CSeq: 149209342 INVITE\r\n"
        b"Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 150\r\n"
        b"\r\n" + sdp(b"192.0.2.1"), "must not carry headers"),
    "baddn": (
        b"OPTIONS sip:t.watson@example.org SIP/2.0\r\n"
        b"Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\r\n"
        b"Max-Forwards:      70\r\n"
        b"From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43\r\n"
        b"To:      Watson, Thomas <sip:t.watson@example.org>\r\n"
        b"Call-ID: baddn.31415@c.example.com\r\n"
        b"Accept: application/sdp\r\n"
        b"CSeq:    3923239 OPTIONS\r\n"
        b"l: 0\r\n"
        b"\r\n", "display name"),
    "mismatch01": (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=34525\r\n"
        b"Max-Forwards: 6\r\n"
        b"Call-ID: mismatch01.dj0234sxdfl3\r\n"
        b"CSeq: 8 INVITE\r\n"
        b"Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\r\n"
        b"l: 0\r\n"
        b"\r\n", "does not match request method OPTIONS"),
    "mismatch02": (
        b"NEWMETHOD sip:user@example.com SIP/2.0\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=34525\r\n"
        b"Max-Forwards: 6\r\n"
        b"Call-ID: mismatch02.dj0234sxdfl3\r\n"
        b"CSeq: 8 INVITE\r\n"
        b"Contact: <sip:caller@host.example.net>\r\n"
        b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw\r\n"
        b"Content-Type: application/sdp\r\n"
        b"l: 138\r\n"
        b"\r\n"
        b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\n"
        b"m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n",
        "does not match request method NEWMETHOD"),
    "bigcode": (
        b"SIP/2.0 4294967301 better not break the receiver\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n"
        b"Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\r\n"
        b"CSeq: 353494 INVITE\r\n"
        b"From: <sip:user@example.com>;tag=39ansfi3\r\n"
        b"To: <sip:user@example.edu>;tag=902jndnke3\r\n"
        b"Content-Length: 0\r\n"
        b"Contact: <sip:user@host105.example.com>\r\n"
        b"\r\n", "status code"),
}
BADVERS = (
    b"OPTIONS sip:t.watson@example.org SIP/7.0\r\n"
    b"Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\r\n"
    b"Max-Forwards:     70\r\n"
    b"From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\r\n"
    b"To:      T. Watson <sip:t.watson@example.org>\r\n"
    b"Call-ID: badvers.31417@c.example.com\r\n"
    b"CSeq:    1 OPTIONS\r\n"
    b"l: 0\r\n"
    b"\r\n"
)

OPTIONS = (
    b"OPTIONS sip:agent@parley.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Agent" <sip:agent@parley.example.com>\r\n'
    b'From: "Desk 12" <sip:1012@pbx.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
"""A plain request from a desk phone, for the tests that change one thing."""


def one_header_changed(message, name, value):
    """``message`` (bytes) with header line ``name`` replaced by ``value`` (None drops the line)."""
    head, _, body = message.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    out = [lines[0]]
    for line in lines[1:]:
        if line.split(b":")[0].strip().lower() == name.lower():
            if value is not None:
                out.append(name + b": " + value)
        else:
            out.append(line)
    return b"\r\n".join(out) + b"\r\n\r\n" + body


# The RFC 4475 messages.

@pytest.mark.parametrize("name", VALID)
def test_every_valid_torture_message_parses_and_round_trips(name):
    message = parse(VALID[name])
    again = parse(message.to_bytes())
    assert again == message
    assert again.to_bytes() == message.to_bytes()


@pytest.mark.parametrize("name", INVALID)
def test_every_invalid_torture_message_is_a_400_that_names_the_fault(name):
    data, fault = INVALID[name]
    with pytest.raises(SipParseError, match=fault) as raised:
        parse(data)
    assert raised.value.status == 400


def test_a_sip_version_other_than_2_0_is_a_505():
    with pytest.raises(SipParseError, match="SIP/7.0") as raised:
        parse(BADVERS)
    assert raised.value.status == 505


def test_the_short_tortuous_invite_reads_as_rfc_4475_says():
    message = parse(WSINV)
    assert isinstance(message, Request)
    assert message.method == "INVITE"
    assert SipUri.parse(message.uri).params == {"unknownparam": None}
    to = NameAddr.parse(message.headers.get("to"))
    assert (to.display, to.uri.user, to.uri.host, to.tag) == (None, "vivekg", "chair-dnrc.example.com", "1918181833n")
    sender = NameAddr.parse(message.headers.get("From"))
    assert sender.display == 'J Rosenberg \\"'
    assert sender.tag == "98asjd8"
    assert message.headers.get("Max-Forwards") == "0068"
    assert parse_cseq(message.headers.get("CSeq")) == (9, "INVITE")
    vias = [Via.parse(value) for value in message.headers.get_all("Via")]
    assert [(via.transport, via.host, via.branch) for via in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert message.headers.get("Subject") == ""
    assert message.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert message.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    [contact] = [NameAddr.parse(value) for value in message.headers.get_all("Contact")]
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert message.headers.get_all("Route") == ["<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"]
    assert message.body == sdp(b"192.0.2.3", b"192.0.2.4")


def test_unusual_but_legal_characters_survive_in_method_uri_names_and_values():
    message = parse(INTMETH)
    assert message.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = SipUri.parse(message.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert NameAddr.parse(message.headers.get("To")).display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    sender = NameAddr.parse(message.headers.get("From"))
    assert sender.display == "token1~` token2'+_ token3*%!.-"
    assert sender.tag == "_token~1'+`*%!-."
    assert sender.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert message.headers.get("Call-ID") == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert message.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert parse_cseq(message.headers.get("CSeq")) == (139122385, message.method)


def test_percent_escapes_are_kept_as_written():
    message = parse(ESC01)
    assert SipUri.parse(message.uri).user == "sips%3Auser%40example.com"
    assert NameAddr.parse(message.headers.get("From")).uri.user == "I%20have%20spaces"
    [contact] = message.headers.get_all("Contact")
    assert NameAddr.parse(contact).uri.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}
    assert message.headers.get("Content-Type") == "application/sdp"
    assert message.headers.get("Call-ID") == "esc01.239409asdfakjkn23onasd0-3234"


def test_escaped_nulls_in_uris_are_just_text():
    message = parse(ESCNULL)
    assert [NameAddr.parse(value).uri.user for value in message.headers.get_all("Contact")] == ["%00", "%00%00"]


def test_percent_in_a_method_or_header_name_is_not_an_escape():
    message = parse(ESC02)
    assert message.method == "RE%47IST%45R"
    assert [NameAddr.parse(value).uri.host for value in message.headers.get_all("Contact")] == [
        "host1.example.com", "host3.example.com"]
    assert message.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_a_display_name_may_touch_the_angle_bracket():
    sender = NameAddr.parse(parse(LWSDISP).headers.get("From"))
    assert (sender.display, sender.uri.user, sender.tag) == ("caller", "caller", "323")


def test_long_values_and_every_spelling_of_via_are_read():
    message = parse(LONGREQ)
    vias = [Via.parse(value) for value in message.headers.get_all("Via")]
    assert len(vias) == 34
    assert [via.host for via in vias[:3]] == ["sip33.example.com", "sip32.example.com", "sip31.example.com"]
    assert vias[-1].received == "192.0.2.5"
    to = NameAddr.parse(message.headers.get("To"))
    assert to.uri.port == 6000
    assert to.display == "I have a user name of " + "extreme " * 10 + "proportion"
    assert len(NameAddr.parse(message.headers.get("From")).tag) == 2 + 150 + 3


def test_bytes_after_content_length_in_a_datagram_are_ignored():
    message = parse(DBLREQ)
    assert message.method == "REGISTER"
    assert message.body == b""


def test_a_semicolon_in_the_user_part_stays_in_the_user_part():
    message = parse(SEMIURI)
    assert SipUri.parse(message.uri).user == "user;par=u%40example.net"
    assert message.headers.get_all("Accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed", "multipart/signed", "message/sip",
        "message/sipfrag"]


def test_reason_phrases_may_be_utf8_or_empty():
    unusual = parse(UNREASON)
    assert isinstance(unusual, Response)
    assert (unusual.status, unusual.reason) == (200, UNREASON_PHRASE)
    assert len(unusual.body) == 154
    empty = parse(NOREASON)
    assert (empty.status, empty.reason) == (100, "")


def test_a_contact_uri_with_headers_must_be_in_angle_brackets():
    with pytest.raises(SipParseError, match="enclosed in <>"):
        NameAddr.parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E")
    contact = NameAddr.parse("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
    assert contact.uri.headers == {"Route": "%3Csip:sip.example.com%3E"}


# The rest of parsing: tolerance and strictness beyond RFC 4475.

def test_leading_keepalive_crlfs_are_skipped():
    assert parse(b"\r\n\r\n" + OPTIONS) == parse(OPTIONS)


def test_a_datagram_of_only_keepalive_crlfs_is_not_a_message():
    with pytest.raises(SipParseError, match="keep-alive"):
        parse(b"\r\n\r\n")


def test_lf_only_line_ends_are_tolerated():
    assert parse(OPTIONS.replace(b"\r\n", b"\n")) == parse(OPTIONS)


def test_a_datagram_without_content_length_keeps_the_rest_as_body():
    message = parse(one_header_changed(OPTIONS, b"Content-Length", None) + b"hello")
    assert message.body == b"hello"
    assert message.headers.get("Content-Length") == "5"


def test_a_body_longer_than_content_length_is_cut_and_a_shorter_one_is_an_error():
    assert parse(one_header_changed(OPTIONS, b"Content-Length", b"3") + b"hello").body == b"hel"
    with pytest.raises(SipParseError, match="shorter than Content-Length 9"):
        parse(one_header_changed(OPTIONS, b"Content-Length", b"9") + b"hello")


def test_a_header_section_without_an_empty_line_is_an_error():
    with pytest.raises(SipParseError, match="empty line"):
        parse(OPTIONS.rstrip(b"\r\n"))


@pytest.mark.parametrize("name", [b"Via", b"From", b"To", b"Call-ID", b"CSeq"])
def test_a_missing_required_header_is_named(name):
    with pytest.raises(SipParseError, match=f"missing {name.decode()} header"):
        parse(one_header_changed(OPTIONS, name, None))


def test_a_missing_max_forwards_is_tolerated():
    assert "Max-Forwards" not in parse(one_header_changed(OPTIONS, b"Max-Forwards", None)).headers


@pytest.mark.parametrize("name, value, fault", [
    (b"Max-Forwards", b"256", "Max-Forwards"),
    (b"Max-Forwards", b"seventy", "Max-Forwards"),
    (b"Call-ID", b"two words", "Call-ID"),
    (b"CSeq", b"OPTIONS", "CSeq"),
    (b"CSeq", b"2147483648 OPTIONS", "2\\*\\*31"),
    (b"Via", b"SIP/2.0/UDP", "Via"),
    (b"Via", b"SIP/3.0/UDP host.example.com", "SIP/3.0"),
    (b"Via", b"SIP/2.0/UDP host.example.com:70000", "port"),
    (b"To", b"<sip:agent@parley.example.com", "unterminated"),
    (b"To", b"<mailto:agent@parley.example.com>", "scheme"),
    (b"From", b"<sip:1012@pbx.example.com>;tag=1;tag=2", "twice"),
    (b"Content-Length", b"0x10", "Content-Length"),
])
def test_a_malformed_essential_header_is_an_error(name, value, fault):
    with pytest.raises(SipParseError, match=fault):
        parse(one_header_changed(OPTIONS, name, value))


def test_an_essential_header_given_twice_is_an_error():
    with pytest.raises(SipParseError, match="From header given more than once"):
        parse(OPTIONS.replace(b"CSeq:", b"From: <sip:x@example.com>;tag=9\r\nCSeq:"))


@pytest.mark.parametrize("data, fault", [
    (OPTIONS.replace(b"Accept: ", b"Accept: \x01"), "control character"),
    (OPTIONS.replace(b"Accept: ", b"Accept: a\rb"), "control character"),
    (OPTIONS.replace(b"Accept: application/sdp", b"Accept application/sdp"), "bad header line"),
    (OPTIONS.replace(b"Accept:", b"Acc ept:"), "bad header line"),
    (b" " + OPTIONS, "request line"),
    (OPTIONS.replace(b"Desk 12", b"Desk \xff12"), "not UTF-8"),
    (OPTIONS.replace(b"SIP/2.0\r\n", b"HTTP/1.1\r\n", 1), "SIP version"),
    (b"SIP/2.0 99 Too Low\r\n" + OPTIONS.partition(b"\r\n")[2], "status code"),
])
def test_broken_lines_are_errors_that_say_what_is_wrong(data, fault):
    with pytest.raises(SipParseError, match=fault):
        parse(data)


def test_a_continuation_line_before_any_header_is_an_error():
    with pytest.raises(SipParseError, match="continuation line"):
        parse(OPTIONS.replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n folded\r\n", 1))


def test_every_compact_header_name_is_stored_under_its_full_name():
    compact = {"i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
               "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via",
               "r": "Refer-To", "b": "Referred-By", "o": "Event", "x": "Session-Expires", "u": "Allow-Events"}
    headers = Headers()
    for letter, full in compact.items():
        headers.add(letter.upper(), f"value-{letter}")
    assert [name for name, _ in headers.items()] == list(compact.values())
    assert headers.get("i") == headers.get("CALL-ID") == "value-i"


# Headers.

def test_headers_look_up_names_in_any_case_and_keep_order():
    headers = Headers([("via", "SIP/2.0/UDP a"), ("X-Custom", "1"), ("Via", "SIP/2.0/UDP b"), ("x-custom", "2")])
    assert headers.get_all("VIA") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert headers.get("x-CUSTOM") == "1"
    assert headers.get_all("X-Custom") == ["1", "2"]
    assert headers.get("Missing", "default") == "default"
    assert "v" in headers and "Route" not in headers
    assert headers.items() == [("Via", "SIP/2.0/UDP a"), ("X-Custom", "1"), ("Via", "SIP/2.0/UDP b"),
                               ("x-custom", "2")]


def test_list_headers_split_at_commas_outside_quotes_and_angle_brackets():
    headers = Headers([
        ("Contact", '"Smith, John" <sip:j@a.example.com;x=1,2>;q=0.5, sip:k@b.example.com'),
        ("Contact", "<sip:l@c.example.com>"),
        ("Allow", "INVITE, ACK,,CANCEL ,BYE"),
        ("Subject", "lunch, maybe"),
    ])
    assert headers.get_all("Contact") == ['"Smith, John" <sip:j@a.example.com;x=1,2>;q=0.5', "sip:k@b.example.com",
                                          "<sip:l@c.example.com>"]
    assert headers.get_all("Allow") == ["INVITE", "ACK", "CANCEL", "BYE"]
    assert headers.get("Allow") == "INVITE"
    assert headers.get_all("Subject") == ["lunch, maybe"]


def test_set_replaces_every_value_in_place_and_remove_drops_them():
    headers = Headers([("Route", "<sip:a>"), ("To", "<sip:b>"), ("Route", "<sip:c>")])
    headers.set("route", "<sip:d>")
    assert headers.items() == [("Route", "<sip:d>"), ("To", "<sip:b>")]
    headers.set("Expires", "60")
    assert headers.items()[-1] == ("Expires", "60")
    headers.remove("ROUTE")
    assert headers.items() == [("To", "<sip:b>"), ("Expires", "60")]


def test_a_copy_is_independent():
    headers = Headers([("To", "<sip:b>")])
    copied = headers.copy()
    copied.add("From", "<sip:a>")
    assert headers.items() == [("To", "<sip:b>")]
    assert copied != headers


@pytest.mark.parametrize("name, value", [("Subject", "a\r\nVia: injected"), ("Subject", "a\nb"), ("Bad Name", "x"),
                                         ("", "x")])
def test_headers_refuse_values_that_would_break_the_message(name, value):
    with pytest.raises(ValueError):
        Headers().add(name, value)


def test_structured_values_are_written_with_str():
    headers = Headers()
    headers.add("Via", Via("UDP", "192.0.2.1", 5060, {"branch": "z9hG4bK1"}))
    assert headers.get("Via") == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1"


# Serialization.

def test_serialization_uses_canonical_names_crlf_and_one_content_length_from_the_body():
    request = Request("MESSAGE", "sip:agent@parley.example.com", Headers([
        ("v", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"),
        ("call-id", "abc@host"),
        ("cseq", "1 MESSAGE"),
        ("www-authenticate", 'Digest realm="x"'),
        ("content-length", "999"),
        ("Content-Length", "7"),
    ]), b"hi there")
    assert request.to_bytes() == (
        b"MESSAGE sip:agent@parley.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"Call-ID: abc@host\r\n"
        b"CSeq: 1 MESSAGE\r\n"
        b'WWW-Authenticate: Digest realm="x"\r\n'
        b"Content-Length: 8\r\n"
        b"\r\n"
        b"hi there"
    )


def test_content_length_is_written_even_without_a_body():
    response = Response(200, "OK", Headers([("Call-ID", "abc@host")]))
    assert response.to_bytes() == b"SIP/2.0 200 OK\r\nCall-ID: abc@host\r\nContent-Length: 0\r\n\r\n"


def test_folded_headers_are_written_on_one_line():
    data = parse(WSINV).to_bytes()
    head = data.partition(b"\r\n\r\n")[0]
    assert all(not line[:1].isspace() for line in head.split(b"\r\n"))
    assert b"NewFangledHeader: newfangled value continued newfangled value\r\n" in head


# URIs, addresses, Via, CSeq.

@pytest.mark.parametrize("text, parts", [
    ("sip:alice@atlanta.example.com", ("sip", "alice", None, "atlanta.example.com", None, {}, {})),
    ("SIPS:alice:secret@192.0.2.4:5061;transport=tcp;lr",
     ("sips", "alice", "secret", "192.0.2.4", 5061, {"transport": "tcp", "lr": None}, {})),
    ("sip:[2001:db8::10]:5070;maddr=239.255.255.1", ("sip", None, None, "2001:db8::10", 5070,
                                                     {"maddr": "239.255.255.1"}, {})),
    ("sip:biloxi.example.com;method=REGISTER?to=sip:bob%40biloxi.com&x=",
     ("sip", None, None, "biloxi.example.com", None, {"method": "REGISTER"}, {"to": "sip:bob%40biloxi.com", "x": ""})),
    ("tel:+1-201-555-0123;phone-context=example.com", ("tel", "+1-201-555-0123", None, "", None,
                                                       {"phone-context": "example.com"}, {})),
])
def test_uris_parse_into_their_parts_and_back(text, parts):
    uri = SipUri.parse(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port, uri.params, uri.headers) == parts
    assert SipUri.parse(str(uri)) == uri


@pytest.mark.parametrize("text", [
    "", "alice@example.com", "sip:", "sip:alice@", "sip:alice@exa mple.com", "sip:a@b:99999", "sip:a@b:port",
    "sip:a@[::zz]", "sip:a@[::1", "sip:a@b;;lr", "sip:a@b;x=1;x=2", "sip:a@b?", "sip:a@b?x", "http://example.com",
    "sip:a b@c", "sip:a%zz@b", "tel:", "tel:+1 555", "<sip:a@b>", None,
])
def test_junk_uris_are_errors(text):
    with pytest.raises(SipParseError):
        SipUri.parse(text)


def test_name_addr_reads_both_forms_and_writes_the_bracketed_one():
    bracketed = NameAddr.parse('"Bob" <sip:bob@biloxi.example.com>;tag=a6c85cf')
    bare = NameAddr.parse("sip:bob@biloxi.example.com;tag=a6c85cf")
    assert (bracketed.display, bracketed.tag) == ("Bob", "a6c85cf")
    assert (bare.display, bare.tag) == (None, "a6c85cf")
    assert bare.uri == bracketed.uri and bare.uri.params == {}
    assert str(bracketed) == '"Bob" <sip:bob@biloxi.example.com>;tag=a6c85cf'
    assert str(bare) == "<sip:bob@biloxi.example.com>;tag=a6c85cf"


def test_with_tag_adds_a_tag_without_touching_the_rest():
    address = NameAddr.parse("Bob <sip:bob@biloxi.example.com>;expires=60")
    tagged = address.with_tag("314159")
    assert tagged.tag == "314159" and address.tag is None
    assert tagged.params == {"expires": "60", "tag": "314159"}
    assert NameAddr.parse(str(tagged)) == tagged


def test_display_names_with_quotes_and_backslashes_round_trip():
    address = NameAddr('O"Brien \\ co', SipUri.parse("sip:ob@example.com"), {})
    assert str(address) == '"O\\"Brien \\\\ co" <sip:ob@example.com>'
    assert NameAddr.parse(str(address)) == address


@pytest.mark.parametrize("text", ["", '"Bob <sip:bob@b>', "Bob, Jr <sip:bob@b>", '"Bob" sip:bob@b', "<sip:bob@b",
                                  "<sip:bob@b> tag=1", "<sip:bob@b>;", "< sip:bob@b >", "sip:a@b,sip:c@d", "*"])
def test_junk_addresses_are_errors(text):
    with pytest.raises(SipParseError):
        NameAddr.parse(text)


def test_via_reads_sent_by_and_parameters():
    via = Via.parse("SIP/2.0/tcp [2001:db8::1]:5062 ;branch=z9hG4bK74bf9;received=2001:db8::9;rport=5090")
    assert (via.transport, via.host, via.port, via.branch) == ("TCP", "2001:db8::1", 5062, "z9hG4bK74bf9")
    assert (via.received, via.rport) == ("2001:db8::9", 5090)
    assert str(via) == "SIP/2.0/TCP [2001:db8::1]:5062;branch=z9hG4bK74bf9;received=2001:db8::9;rport=5090"
    assert Via.parse(str(via)) == via


def test_a_server_stamps_received_and_rport_on_the_via_it_got():
    asked = Via.parse("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;rport")
    stamped = asked.with_received("203.0.113.7", 40000)
    assert stamped.params == {"branch": "z9hG4bK1", "rport": "40000", "received": "203.0.113.7"}
    assert stamped.response_address() == ("203.0.113.7", 40000)
    plain = Via.parse("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2")
    assert plain.with_received("192.0.2.1", 5060) == plain
    assert plain.response_address() == ("192.0.2.1", 5060)
    assert Via.parse("SIP/2.0/TLS h.example.com;maddr=239.1.1.1").response_address() == ("239.1.1.1", 5061)


@pytest.mark.parametrize("text", ["", "SIP/2.0/UDP", "SIP/2.0 UDP host", "SIP/2.0/UDPhost", "SIP/2.0/UDP host;",
                                  "SIP/2.0/UDP host;;branch=1", "SIP/2.0/UDP ho st", "HTTP/2.0/TCP host",
                                  "SIP/2.0/UDP host;branch=a;branch=b", "SIP/2.0/UDP host:"])
def test_junk_vias_are_errors(text):
    with pytest.raises(SipParseError):
        Via.parse(text)


def test_cseq_is_a_number_below_2_31_and_a_method():
    assert parse_cseq("0009 \t INVITE") == (9, "INVITE")
    assert parse_cseq("2147483647 BYE") == (2147483647, "BYE")
    for junk in ("", "INVITE", "1", "1 INVITE extra", "-1 INVITE", "2147483648 INVITE", "1" * 40 + " INVITE", None):
        with pytest.raises(SipParseError):
            parse_cseq(junk)


# Responses.

def test_make_response_copies_the_headers_rfc_3261_names_in_order():
    request = parse(WSINV)
    response = make_response(request, 180, to_tag="as6151ad25", headers=[("Contact", "<sip:agent@192.0.2.9>")])
    assert (response.status, response.reason) == (180, "Ringing")
    assert [name for name, _ in response.headers.items()] == ["Via", "Via", "Via", "From", "To", "Call-ID", "CSeq",
                                                             "Contact"]
    assert response.headers.get_all("Via") == request.headers.get_all("Via")
    assert response.headers.get("From") == request.headers.get("From")
    assert response.headers.get("To") == request.headers.get("To")
    assert response.headers.get("Call-ID") == "wsinv.ndaksdj@192.0.2.1"
    assert response.headers.get("CSeq") == "0009 INVITE"
    assert parse(response.to_bytes()) == response


def test_make_response_tags_an_untagged_to_and_keeps_an_existing_tag():
    request = parse(OPTIONS)
    tagged = make_response(request, 200, to_tag="8321234356")
    assert NameAddr.parse(tagged.headers.get("To")).tag == "8321234356"
    assert tagged.headers.get("To") == '"Agent" <sip:agent@parley.example.com>;tag=8321234356'
    assert NameAddr.parse(make_response(request, 100).headers.get("To")).tag is None
    in_dialog = parse(WSINV)
    kept = make_response(in_dialog, 200, to_tag="other")
    assert NameAddr.parse(kept.headers.get("To")).tag == "1918181833n"


def test_make_response_carries_a_body_and_its_type():
    response = make_response(parse(OPTIONS), 200, body=b"v=0\r\n", content_type="application/sdp",
                             headers=[("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")])
    assert response.headers.get("Content-Type") == "application/sdp"
    assert response.to_bytes().endswith(b"Content-Length: 5\r\n\r\nv=0\r\n")
    assert parse(response.to_bytes()).body == b"v=0\r\n"


@pytest.mark.parametrize("status, reason", [
    (100, "Trying"), (180, "Ringing"), (200, "OK"), (202, "Accepted"), (400, "Bad Request"), (401, "Unauthorized"),
    (403, "Forbidden"), (404, "Not Found"), (405, "Method Not Allowed"), (407, "Proxy Authentication Required"),
    (408, "Request Timeout"), (413, "Request Entity Too Large"), (415, "Unsupported Media Type"),
    (420, "Bad Extension"), (481, "Call/Transaction Does Not Exist"), (486, "Busy Here"),
    (487, "Request Terminated"), (488, "Not Acceptable Here"), (491, "Request Pending"),
    (500, "Server Internal Error"), (501, "Not Implemented"), (503, "Service Unavailable"),
    (505, "Version Not Supported"), (499, "Client Error"), (699, "Global Failure"),
])
def test_make_response_knows_the_usual_reason_phrases(status, reason):
    assert make_response(parse(OPTIONS), status).reason == reason


def test_make_response_takes_a_given_reason_and_refuses_an_impossible_status():
    assert make_response(parse(OPTIONS), 200, "Fine").reason == "Fine"
    for status in (99, 700, "200"):
        with pytest.raises(ValueError):
            make_response(parse(OPTIONS), status)


# Stream framing.

def test_a_message_split_at_every_byte_boundary_comes_out_whole_once():
    expected = parse(WSINV)
    for cut in range(len(WSINV) + 1):
        framer = StreamFramer()
        assert framer.feed(WSINV[:cut]) + framer.feed(WSINV[cut:]) == [expected]


def test_a_message_fed_a_byte_at_a_time_comes_out_whole():
    framer = StreamFramer()
    out = [message for i in range(len(ESC01)) for message in framer.feed(ESC01[i:i + 1])]
    assert out == [parse(ESC01)]


def test_two_messages_in_one_chunk_with_keepalives_come_out_in_order():
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n" + OPTIONS + b"\r\n\r\n" + ESC01 + b"\r\n") == [parse(OPTIONS), parse(ESC01)]
    assert framer.feed(b"\r\n") == []


def test_a_stream_message_without_content_length_breaks_the_stream():
    framer = StreamFramer()
    with pytest.raises(SipParseError, match="missing Content-Length"):
        framer.feed(one_header_changed(OPTIONS, b"Content-Length", None))
    with pytest.raises(SipParseError, match="missing Content-Length"):
        framer.feed(OPTIONS)


def test_an_oversized_stream_message_is_a_413():
    framer = StreamFramer(max_message=1024)
    with pytest.raises(SipParseError) as raised:
        framer.feed(one_header_changed(OPTIONS, b"Content-Length", b"2000"))
    assert raised.value.status == 413
    endless = StreamFramer(max_message=1024)
    with pytest.raises(SipParseError) as raised:
        endless.feed(b"OPTIONS sip:a@b SIP/2.0\r\nX-Padding: " + b"x" * 2000)
    assert raised.value.status == 413


def test_the_default_stream_limit_admits_a_full_datagram():
    assert StreamFramer().max_message >= MAX_UDP_MESSAGE


def test_an_invalid_but_framed_message_is_reported_after_the_good_ones_and_the_stream_goes_on():
    framer = StreamFramer()
    bad = INVALID["mismatch01"][0]
    assert framer.feed(OPTIONS + bad) == [parse(OPTIONS)]
    with pytest.raises(SipParseError, match="does not match"):
        framer.feed(LWSDISP)
    assert framer.feed(b"") == [parse(LWSDISP)]


# Fuzzing.

def parses_or_rejects(data):
    """``parse`` either raises SipParseError or gives a message that survives a round trip."""
    try:
        message = parse(data)
    except SipParseError:
        return
    again = parse(message.to_bytes())
    assert again == message
    assert again.to_bytes() == message.to_bytes()


CORPUS = [*VALID.values(), *(data for data, _ in INVALID.values()), BADVERS, OPTIONS]
INSERTIONS = st.sampled_from([b"\r\n", b"\r\n ", b"\n", b" ", b";", b",", b":", b'"', b"\\", b"<", b">", b"\x00",
                              b"\xff", b"%", b"=", b"@", b"\r\n\r\n"]) | st.binary(max_size=8)


@st.composite
def mutated_messages(draw):
    """A corpus message with a few byte flips, truncations, insertions and deletions."""
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        position = draw(st.integers(0, len(data)))
        if operation == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "truncate":
            del data[position:]
        elif operation == "insert":
            data[position:position] = draw(INSERTIONS)
        elif operation == "delete":
            del data[position:position + draw(st.integers(1, 16))]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_ever_raise_sip_parse_error(data):
    parses_or_rejects(data)
    parses_or_rejects(b"INVITE sip:a@b SIP/2.0\r\n" + data)


@settings(max_examples=300, deadline=None)
@given(mutated_messages())
def test_mutated_messages_only_ever_raise_sip_parse_error_and_valid_ones_round_trip(data):
    parses_or_rejects(data)


@settings(max_examples=300, deadline=None)
@given(mutated_messages(), st.integers(1, 64))
def test_mutated_streams_only_ever_raise_sip_parse_error(data, chunk):
    framer = StreamFramer()
    for start in range(0, len(data), chunk):
        try:
            framer.feed(data[start:start + chunk])
        except SipParseError:
            pass


URI_TEXT = st.text(alphabet="sip:tel+@.;=?&%[]<>\"',/ \\abcAB019-_!~*()$", max_size=40)


@settings(max_examples=300, deadline=None)
@given(URI_TEXT, st.sampled_from(["", "sip:", "sips:", "tel:", '"x" <sip:', "SIP/2.0/UDP "]))
def test_uri_address_and_via_text_only_ever_raise_sip_parse_error_and_round_trip(text, prefix):
    for kind in (SipUri, NameAddr, Via):
        try:
            value = kind.parse(prefix + text)
        except SipParseError:
            continue
        assert kind.parse(str(value)) == value


# Round trips of generated messages.

TOKENS = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,12}", fullmatch=True)
LOWER_TOKENS = st.from_regex(r"[a-z0-9\-.!%*_+`'~]{1,10}", fullmatch=True)
HOSTS = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,3}", fullmatch=True) | st.ip_addresses().map(str)
USERS = st.from_regex(r"([A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-F]{2}){1,12}", fullmatch=True)
URI_PARAMS = st.dictionaries(st.from_regex(r"[a-z0-9\-_.!~*']{1,8}", fullmatch=True),
                             st.none() | st.from_regex(r"[A-Za-z0-9\-_.!~*'\[\]/:&+$]{1,8}", fullmatch=True),
                             max_size=3)
URIS = st.builds(SipUri, scheme=st.sampled_from(["sip", "sips"]), user=st.none() | USERS, password=st.none(),
                 host=HOSTS, port=st.none() | st.integers(0, 65535), params=URI_PARAMS, headers=st.just({}))
HEADER_PARAMS = st.dictionaries(LOWER_TOKENS, st.none() | TOKENS, max_size=3)
DISPLAYS = st.none() | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20)
ADDRESSES = st.builds(NameAddr, display=DISPLAYS, uri=URIS, params=HEADER_PARAMS)
VIAS = st.builds(Via, transport=st.sampled_from(["UDP", "TCP", "TLS"]), host=HOSTS,
                 port=st.none() | st.integers(0, 65535), params=HEADER_PARAMS)
CALL_IDS = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~()<>:/\[\]?{}]{1,20}(@[a-z0-9.]{1,12})?", fullmatch=True)
TEXT_VALUES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).map(lambda text: text.strip(" "))
EXTRA_HEADERS = st.lists(st.tuples(st.from_regex(r"X-[A-Za-z0-9\-]{1,10}", fullmatch=True), TEXT_VALUES), max_size=4)


@st.composite
def generated_messages(draw):
    """A request or response with valid essential headers, extension headers and a body."""
    method = draw(TOKENS)
    headers = Headers()
    for via in draw(st.lists(VIAS, min_size=1, max_size=3)):
        headers.add("Via", via)
    headers.add("From", draw(ADDRESSES))
    headers.add("To", draw(ADDRESSES))
    headers.add("Call-ID", draw(CALL_IDS))
    headers.add("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}")
    headers.add("Max-Forwards", str(draw(st.integers(0, 255))))
    for name, value in draw(EXTRA_HEADERS):
        headers.add(name, value)
    body = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        return Request(method, str(draw(URIS)), headers, body)
    return Response(draw(st.integers(100, 699)), draw(TEXT_VALUES), headers, body)


@settings(max_examples=300, deadline=None)
@given(generated_messages())
def test_generated_messages_round_trip_through_bytes(message):
    assert parse(message.to_bytes()) == message
