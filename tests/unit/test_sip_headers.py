"""Structured header fields of gateway.sip.headers: Via, URIs, name-addr, CSeq.

Rule-free: protocol conformance (RFC 3261 §19/§20/§25, RFC 3966, RFC 3581), no SPEC.md rule.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip import headers as H
from gateway.sip.headers import (
    NameAddr,
    SipError,
    Uri,
    Via,
    check_name_addr,
    check_uri,
    check_via,
    name_addr_params,
    parse_cseq,
    parse_name_addr,
    parse_uri,
    parse_via,
    quote_display,
    split_list,
    unescape,
)

# --------------------------------------------------------------------------------------------
# Via


def test_via_basic_with_branch_and_port() -> None:
    via = parse_via("SIP/2.0/UDP pbx.example.com:5062;branch=z9hG4bK776asdhds")
    assert via == Via("UDP", "pbx.example.com", 5062, {"branch": "z9hG4bK776asdhds"})
    assert via.branch == "z9hG4bK776asdhds"
    assert via.received is None
    assert via.rport is None and not via.has_rport
    assert str(via) == "SIP/2.0/UDP pbx.example.com:5062;branch=z9hG4bK776asdhds"


def test_via_rport_empty_and_valued_and_received() -> None:
    request_side = parse_via("SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKabc")
    assert request_side.has_rport and request_side.rport is None
    assert request_side.params == {"rport": None, "branch": "z9hG4bKabc"}
    assert str(request_side) == "SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKabc"

    response_side = parse_via(
        "SIP/2.0/UDP 10.0.0.5:5060;rport=40123;received=203.0.113.9;branch=z9hG4bKabc"
    )
    assert response_side.rport == 40123
    assert response_side.received == "203.0.113.9"
    assert response_side.sent_by == ("10.0.0.5", 5060)


def test_via_ipv6_host_is_unbracketed_and_rebracketed() -> None:
    via = parse_via("SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bKx;received=2001:db8::1")
    assert via.host == "2001:db8::9"
    assert via.port == 5070
    assert via.received == "2001:db8::1"  # received carries an IPv6address without brackets
    assert str(via) == "SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bKx;received=2001:db8::1"
    assert parse_via(str(via)) == via
    # A caller that built a Via with a bracketed host still gets one pair of brackets.
    assert str(Via("UDP", "[::1]", None, {})) == "SIP/2.0/UDP [::1]"


def test_via_lws_everywhere_and_transport_case() -> None:
    via = parse_via("SIP  / 2.0  / tcp     spindle.example.com   ; branch  =   z9hG4bK9ikj8")
    assert via.transport == "TCP"
    assert via.host == "spindle.example.com" and via.port is None
    assert via.branch == "z9hG4bK9ikj8"
    assert str(via) == "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8"


def test_via_param_names_are_case_insensitive_values_kept() -> None:
    via = parse_via("SIP/2.0/UDP h;BRANCH=z9hG4bKAbC;Received=1.2.3.4")
    assert via.branch == "z9hG4bKAbC"
    assert via.received == "1.2.3.4"


def test_via_unknown_transport_and_protocol_kept() -> None:
    via = parse_via("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en")
    assert via.transport == "UNKNOWN"
    assert via.protocol == "SIP/2.0"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0 UDP host",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP 192.0.2.15;;,;,,",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP host;branch=a b",
        "SIP/2.0/UDP ho st",
        "SIP/2.0/UDP host, SIP/2.0/UDP other",
    ],
)
def test_via_rejects_malformed(value: str) -> None:
    with pytest.raises(SipError) as info:
        parse_via(value)
    assert info.value.status == 400
    with pytest.raises(SipError):
        check_via(value)


def test_check_via_accepts_what_parse_via_accepts() -> None:
    check_via("SIP/2.0/UDP [::1]:5060;branch=z9hG4bK1")


# --------------------------------------------------------------------------------------------
# URIs


def test_sip_uri_all_parts() -> None:
    uri = parse_uri("sip:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=hi&x=y")
    assert uri == Uri(
        "sip",
        "alice",
        "secret",
        "atlanta.example.com",
        5061,
        {"transport": "tcp", "lr": None},
        "subject=hi&x=y",
    )
    assert str(uri) == "sip:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=hi&x=y"


def test_sips_and_hostonly_and_ipv6() -> None:
    assert parse_uri("sips:bob@biloxi.example.com").scheme == "sips"
    host_only = parse_uri("sip:gw.carrier.example.net:5080;lr")
    assert host_only.user is None and host_only.host == "gw.carrier.example.net"
    assert host_only.port == 5080 and host_only.params == {"lr": None}
    v6 = parse_uri("sip:+15550100@[2001:db8::10]:5060;user=phone")
    assert v6.host == "2001:db8::10"
    assert str(v6) == "sip:+15550100@[2001:db8::10]:5060;user=phone"


def test_scheme_is_case_insensitive() -> None:
    assert parse_uri("SIP:alice@example.com").scheme == "sip"


def test_user_with_semicolon_params_and_escape() -> None:
    # semiuri.dat: the user part itself holds ';par=' and an escaped '@'.
    uri = parse_uri("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"  # raw, for serialization
    assert uri.user_unescaped == "user;par=u@example.net"  # for comparison
    assert uri.host == "example.com" and uri.params == {}
    assert str(uri) == "sip:user;par=u%40example.net@example.com"


def test_telephone_subscriber_user_with_phone_context() -> None:
    uri = parse_uri("sip:+1-727-555-0100;isub=123@gw.example.com;user=phone")
    assert uri.user == "+1-727-555-0100;isub=123"
    assert uri.params == {"user": "phone"}


def test_percent_escapes_kept_raw_and_compared_unescaped() -> None:
    a = parse_uri("sip:%75se%72@example.com")
    b = parse_uri("sip:user@EXAMPLE.com")
    assert a.user == "%75se%72"
    assert a.user_unescaped == "user"
    assert str(a) == "sip:%75se%72@example.com"
    assert a.equivalent(b)
    assert a != b  # dataclass equality is on the wire text


def test_escaped_nul_does_not_truncate() -> None:
    one = parse_uri("sip:%00@host5.example.com")
    two = parse_uri("sip:%00%00@host5.example.com")
    assert one.user_unescaped == "\x00"
    assert two.user_unescaped == "\x00\x00"
    assert not one.equivalent(two)


def test_unescape_is_not_recursive_and_keeps_bad_escapes() -> None:
    assert unescape("v%61lue%25%34%31") == "value%41"
    assert unescape("%Z%45") == "%ZE"
    assert unescape("plain") == "plain"
    assert unescape("%FF") == "\udcff"  # not UTF-8: kept as a surrogate, distinct


def test_uri_equivalence_rules() -> None:
    base = parse_uri("sip:carol@chicago.com")
    assert base.equivalent(parse_uri("sip:carol@chicago.com;newparam=5"))
    assert base.equivalent(parse_uri("sip:carol@chicago.com;security=on"))
    assert not base.equivalent(parse_uri("sip:carol@chicago.com;transport=tcp"))
    assert not base.equivalent(parse_uri("sip:Carol@chicago.com"))  # user is case-sensitive
    assert not base.equivalent(parse_uri("sip:carol@chicago.com:5060"))  # port explicit
    assert parse_uri("sip:carol@chicago.com;Transport=TCP").equivalent(
        parse_uri("sip:carol@CHICAGO.com;transport=tcp")
    )
    assert parse_uri("sip:a@b?Subject=x&Priority=y").equivalent(
        parse_uri("sip:a@b?Priority=y&Subject=x")
    )
    assert not parse_uri("sip:a@b;x=1").equivalent(parse_uri("sip:a@b;x=2"))


def test_tel_uri_with_params() -> None:
    uri = parse_uri("tel:+17275550100;oli=27")
    assert uri.scheme == "tel"
    assert uri.user == "+17275550100"
    assert uri.host == "" and uri.port is None
    assert uri.params == {"oli": "27"}
    assert str(uri) == "tel:+17275550100;oli=27"
    local = parse_uri("tel:7042;phone-context=example.com;ISUP-OLI=29")
    assert local.user == "7042"
    assert local.params == {"phone-context": "example.com", "isup-oli": "29"}


def test_unknown_scheme_is_416_and_garbage_is_400() -> None:
    with pytest.raises(SipError) as info:
        parse_uri("nobodyKnowsThisScheme:totallyopaquecontent")
    assert info.value.status == 416
    with pytest.raises(SipError) as info:
        parse_uri("http://www.example.com")
    assert info.value.status == 416
    for bad in ("", "sip:", "sip:user@", "<sip:a@b>", "sip:a b@c", "sip:a@b:70000", "sip:a@b;;x"):
        with pytest.raises(SipError) as info:
            parse_uri(bad)
        assert info.value.status == 400, bad


def test_check_uri_request_uri_forbids_headers() -> None:
    check_uri("sip:user@example.com?Route=%3Csip:example.com%3E")
    with pytest.raises(SipError):
        check_uri("sip:user@example.com?Route=%3Csip:example.com%3E", allow_headers=False)
    check_uri("soap.beep://192.0.2.103:3002", allow_headers=False)  # opaque: syntax only
    check_uri("tel:+15550100", allow_headers=False)
    with pytest.raises(SipError):
        check_uri("<sip:user@example.com>")


def test_user_may_hold_unusual_characters() -> None:
    # intmeth.dat's Request-URI: user and password with every allowed mark.
    text = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:"
        "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    uri = parse_uri(text)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert str(uri) == text


# --------------------------------------------------------------------------------------------
# name-addr / addr-spec


def test_name_addr_quoted_display_with_escapes() -> None:
    na = parse_name_addr('"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>;tag=98asjd8')
    assert na.display == 'J Rosenberg \\"'
    assert na.uri.user == "jdrosen"
    assert na.tag == "98asjd8"
    assert str(na) == '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>;tag=98asjd8'
    assert parse_name_addr(str(na)) == na


def test_name_addr_token_display_and_no_space_before_bracket() -> None:
    assert parse_name_addr("caller<sip:caller@example.com>;tag=323").display == "caller"
    assert parse_name_addr("A. Bell <sip:a.g.bell@example.com>").display == "A. Bell"
    assert parse_name_addr("<sip:a@b>").display is None


def test_name_addr_quoted_display_may_hold_nul_and_comma() -> None:
    na = parse_name_addr('"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:x@example.com>')
    assert na.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert parse_name_addr(str(na)).display == na.display
    assert parse_name_addr('"Bell, Alexander" <sip:a@b>').display == "Bell, Alexander"


def test_addr_spec_params_belong_to_the_header() -> None:
    # RFC 3261 §20: without <>, everything after the first ';' is a header parameter.
    na = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam")
    assert na.params == {"unknownparam": None}
    assert na.uri.params == {}
    inside = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert inside.params == {}
    assert inside.uri.params == {"unknownparam": None}
    spec_tag = parse_name_addr("sip:caller@example.net;tag=134161461246")
    assert spec_tag.tag == "134161461246" and spec_tag.uri.params == {}


def test_name_addr_tel_uri_params_inside_and_outside() -> None:
    na = parse_name_addr("<tel:+17275550100;oli=27>;tag=9")
    assert na.uri.user == "+17275550100"
    assert na.uri.params == {"oli": "27"}
    assert na.tag == "9"
    assert parse_name_addr("tel:+17275550100;oli=27").params == {"oli": "27"}


def test_name_addr_lws_around_params_and_quoted_values() -> None:
    na = parse_name_addr(
        '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam = newvalue ;'
        " secondparam ; q = 0.33"
    )
    assert na.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    quoted = parse_name_addr('<sip:a@b>;x="a;b=c"')
    assert quoted.params == {"x": '"a;b=c"'}


def test_name_addr_unknown_scheme_is_opaque() -> None:
    to = parse_name_addr("isbn:2983792873")
    assert to.uri.scheme == "isbn" and to.uri.opaque == "2983792873"
    assert str(to.uri) == "isbn:2983792873"
    http = parse_name_addr("<http://www.example.com>;tag=3234233")
    assert http.uri.opaque == "//www.example.com" and http.tag == "3234233"


def test_name_addr_headers_inside_brackets_stay_in_uri() -> None:
    na = parse_name_addr("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
    assert na.uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert na.params == {}


@pytest.mark.parametrize(
    "value",
    [
        '"Mr. J. User <sip:j.user@example.com>',  # quotbal
        '"Watson, Thomas" < sip:t.watson@example.org >',  # badaspec
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # baddn
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # regbadct
        '"Joe" <sip:joe@example.org>;;;;',  # badinv01
        "",
        "<>",
        "<sip:a@b",
        "sip:a@b c",
        "just text",
        "<sip:a@b>;=x",
    ],
)
def test_name_addr_rejects(value: str) -> None:
    with pytest.raises(SipError) as info:
        parse_name_addr(value)
    assert info.value.status == 400
    with pytest.raises(SipError):
        check_name_addr(value)


def test_name_addr_params_fast_and_slow_paths_agree() -> None:
    assert name_addr_params("<sip:a@b>;tag=1;X=Y;lr") == {"tag": "1", "x": "Y", "lr": None}
    assert name_addr_params("<sip:a@b> ; tag = 1 ; X = Y ; lr") == {
        "tag": "1",
        "x": "Y",
        "lr": None,
    }


def test_name_addr_str_quotes_display_and_brackets_uri() -> None:
    na = NameAddr('Al "Big" \\o/', parse_uri("sip:al@example.com;lr"), {"tag": "x"})
    assert str(na) == '"Al \\"Big\\" \\\\o/" <sip:al@example.com;lr>;tag=x'
    assert parse_name_addr(str(na)) == na
    assert quote_display("plain") == '"plain"'
    with pytest.raises(ValueError):
        quote_display("a\r\nb")


# --------------------------------------------------------------------------------------------
# CSeq and lists


def test_parse_cseq() -> None:
    assert parse_cseq("314159 INVITE") == (314159, "INVITE")
    assert parse_cseq("0009 INVITE") == (9, "INVITE")
    assert parse_cseq(f"{2**32 - 1} ACK") == (2**32 - 1, "ACK")
    for bad in (f"{2**32} INVITE", "36893488147419103232 REGISTER", "1", "x INVITE", "-1 BYE"):
        with pytest.raises(SipError) as info:
            parse_cseq(bad)
        assert info.value.status == 400
    with pytest.raises(SipError):
        parse_cseq("9" * 5000 + " INVITE")  # beyond int()'s digit limit: still SipError


def test_split_list_respects_quotes_and_brackets() -> None:
    assert split_list("a, b ,c") == ["a", "b", "c"]
    assert split_list('"Doe, J" <sip:j@x>, <sip:a,b@y>;p="1,2"') == [
        '"Doe, J" <sip:j@x>',
        '<sip:a,b@y>;p="1,2"',
    ]
    assert split_list('"a\\",b" <sip:x@y>') == ['"a\\",b" <sip:x@y>']
    assert split_list("a,,b") == ["a", "", "b"]
    # Malformed input never raises: an unterminated quote or bracket runs to the end.
    assert split_list('"open, x') == ['"open, x']
    assert split_list("<sip:a, b") == ["<sip:a, b"]
    assert split_list('"trailing\\') == ['"trailing\\']


# --------------------------------------------------------------------------------------------
# Fast paths (gateway.sip.headers FAST_*): an expression for the usual shape of a field is
# tried before the full grammar.  It must accept only what the full grammar accepts, and
# capture the same texts when it does; parse results and errors must not depend on which
# path a value took.

JUNK = [" ", "\t", ";", "=", ":", ",", "<", ">", '"', "\\", "@", "?", "[", "]", "%", "\x00", "é"]


@st.composite
def _mutated(draw: st.DrawFn, parts: list[st.SearchStrategy[str]]) -> str:
    """Mostly the usual shape (the parts, in order), sometimes with a character of the
    separators inserted or one dropped, to probe the edges of the fast expressions."""
    value = "".join(draw(part) for part in parts)
    if value and draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(value)))
        if draw(st.booleans()):
            value = value[:at] + draw(st.sampled_from(JUNK)) + value[at:]
        else:
            value = value[:at] + value[at + 1 :]
    return value


def _usually(usual: list[str], odd: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(usual), st.sampled_from(usual), st.sampled_from(usual + odd))


def _params(usual: list[str], odd: list[str]) -> st.SearchStrategy[str]:
    return st.lists(_usually(usual, odd), max_size=3).map("".join)


HOSTS = _usually(["h.example.com", "192.0.2.1", "[2001:db8::1]", "H_1"], ["[::1", "h..x", ""])
PORTS = _usually(["", ":5060", ":65535"], [":65536", ":99999", ":00000", ":123456", ":"])
VIAS = _mutated(
    [
        _usually(["SIP/2.0/UDP", "SIP/2.0/TCP"], ["sip/2.0/udp", "SIP / 2.0 / UDP", "SIP/2.0/"]),
        _usually([" "], ["  ", "\t", ""]),
        HOSTS,
        PORTS,
        _params([";branch=z9hG4bK1", ";rport", ";rport=5060", ";received=2001:db8::1"],
                [";received=[::1]", ";x=a:b", ';y="a;b"', " ; z = 1", ";", ";=1"]),
    ]
)  # fmt: skip
URIS = _mutated(
    [
        _usually(["sip:", "sips:"], ["SIP:", "tel:", "http:", "sipx:"]),
        _usually(["", "alice@", "+1212@"], ["a;b@", "a?b@", "a:pw@", "a:p;w@", "%41@"]),
        HOSTS,
        PORTS,
        _params([";user=phone", ";lr"], [";x=", ";x=[a]", ";=x", ";"]),
        _usually([""], ["?h=v", "?"]),
    ]
)  # fmt: skip
NAME_ADDRS = _mutated(
    [
        _usually(['"Alice" ', "", "Alice "], ['"A \\"q\\" B" ', '"a\\\\"', "Alice  Smith ", "Ål ", " "]),
        _usually(["<"], [""]),
        URIS,
        _usually([">"], [""]),
        _params([";tag=abc", ";lr"], [";TAG=X", ";tag", ";tag=", ' ;p = "q r"', ";"]),
    ]
)  # fmt: skip


def _outcome(parse: Callable[[str], object], value: str) -> tuple:
    try:
        return ("ok", parse(value))
    except SipError as error:
        return ("error", error.reason, error.status)


def test_fast_expressions_take_the_usual_shapes() -> None:
    assert H._VIA_FAST_RE.fullmatch("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport")
    assert H._VIA_FAST_RE.fullmatch("SIP/2.0/TCP [2001:db8::1];received=2001:db8::1")
    assert H._NAME_ADDR_FAST_RE.fullmatch('"Alice" <sip:a@example.com>;tag=1')
    assert H._NAME_ADDR_FAST_RE.fullmatch("Alice Smith <sip:a@example.com;user=phone>")
    assert H._NAME_ADDR_FAST_RE.fullmatch("<tel:+12125551234>")
    assert H._RURI_FAST_RE.fullmatch("sip:+12125551234@203.0.113.1:5060;user=phone")
    # ... and leave the rest to the full grammar
    assert not H._VIA_FAST_RE.fullmatch("SIP / 2.0 / UDP h")
    assert not H._NAME_ADDR_FAST_RE.fullmatch("sip:a@b;tag=1")  # addr-spec
    assert not H._NAME_ADDR_FAST_RE.fullmatch('<sip:a@b>;p="q"')
    assert not H._RURI_FAST_RE.fullmatch("sip:a@b?h=v")


def _check_via_paths(value: str) -> None:
    fast = H._VIA_FAST_RE.fullmatch(value)
    if fast is not None:
        full = H._VIA_RE.fullmatch(value)
        assert full is not None, value
        name, version, transport, host, port, params = full.groups()
        assert (f"{name}/{version}", transport, host, port, params) == ("SIP/2.0", *fast.groups())
    expected = _outcome(lambda v: H._via_from_match(H._via_match(v)), value)
    assert _outcome(parse_via, value) == expected


def _check_name_addr_paths(value: str) -> None:
    fast = H._NAME_ADDR_FAST_RE.fullmatch(value)
    if fast is not None:
        full = H._NAME_ADDR_RE.fullmatch(value)
        assert full is not None, value
        quoted, token, bracketed, spec, params = full.groups()
        assert spec is None and (quoted, token, bracketed, params) == fast.groups()

    def full_path(v: str) -> NameAddr:
        quoted, token, bracketed, spec, params = H._name_addr_match(v).groups()
        display = H._QUOTED_PAIR_RE.sub(r"\1", quoted[1:-1]) if quoted is not None else token
        text = bracketed if bracketed is not None else spec
        uri = H._uri_from_match(*H._uri_match(text.strip(" \t"), opaque_ok=True))
        return NameAddr(display, uri, H._params(params))

    assert _outcome(parse_name_addr, value) == _outcome(full_path, value)
    assert _outcome(H.name_addr_params_text, value) == _outcome(
        lambda v: H._name_addr_match(v)[5], value
    )


def _check_uri_paths(value: str) -> None:
    for fast in (H._RURI_FAST_RE.fullmatch(value), H._SIP_URI_RE.fullmatch(value)):
        if fast is not None:
            scheme, p, _ = H._uri_match(value, opaque_ok=True)
            assert scheme in ("sip", "sips") and p is not None, value
            assert fast.groups()[1:] == p.groups()[: len(fast.groups()) - 1]
    if H._RURI_FAST_RE.fullmatch(value) is not None:
        assert H._SIP_URI_RE.fullmatch(value)[7] is None  # no ?headers: a Request-URI
    full = _outcome(
        lambda v: H._uri_from_match(*H._uri_match(v.strip(" \t"), opaque_ok=False)), value
    )
    assert _outcome(parse_uri, value) == full
    full_check = _outcome(lambda v: check_uri(v, allow_headers=False) and None, value)
    assert _outcome(H.check_request_uri, value) == full_check


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport",
        "SIP/2.0/UDP h:65535",
        "SIP/2.0/UDP h:65536",
        "SIP/2.0/UDP h:00000",
        "SIP/2.0/UDP h:123456",
        "SIP/2.0/udp [2001:db8::1]:5061;received=2001:db8::1",
        "SIP/2.0/UDP h;branch=a;BRANCH=b",
        "SIP/2.0/UDP h;branch",
        "SIP/2.0/UDP h;branch=",
        'SIP/2.0/UDP h;x="a;b"',
        "sip/2.0/UDP h",
        "SIP/2.0/UDP  h",
        "SIP/2.0/UDP h ;branch=x",
    ],
)
def test_via_fast_path_agrees_with_the_grammar(value: str) -> None:
    _check_via_paths(value)


@pytest.mark.parametrize(
    "value",
    [
        '"Alice PBX" <sip:+17275551000@198.51.100.10:5060>;tag=9fc4a2e1',
        '"A \\"q\\" B" <sip:a@b>',
        "Alice  Smith <sip:a@b>;tag=1;tag=2",
        "<sip:a@b>;TAG=X",
        "<sip:a@b>;tag",
        "<sip:a@b>;tag=",
        "<http://x>;tag=1",
        "<sip:a@b?Route=x>",
        "  <sip:a@b>",
        "<sip:a@b> ",
        "Ål <sip:a@b>",
        '"unterminated <sip:a@b>',
    ],
)
def test_name_addr_fast_path_agrees_with_the_grammar(value: str) -> None:
    _check_name_addr_paths(value)


@pytest.mark.parametrize(
    "value",
    [
        "sip:+12125551234@203.0.113.1:5060;user=phone",
        "SIP:a@b",
        "sips:a:pw@[2001:db8::1]:65535;lr",
        "sip:a@b:65536",
        "sip:a?b@h",
        "sip:h?x=y",
        "sip:a;b@h;x=;y",
        "sip:h;=x",
        "sipx:h",
        "tel:+1212",
        " sip:h ",
    ],
)
def test_uri_fast_path_agrees_with_the_grammar(value: str) -> None:
    _check_uri_paths(value)


FAST_PATH_SETTINGS = settings(max_examples=400, deadline=None)


@FAST_PATH_SETTINGS
@given(VIAS)
def test_via_fast_path_agrees_on_generated_values(value: str) -> None:
    _check_via_paths(value)


@FAST_PATH_SETTINGS
@given(NAME_ADDRS)
def test_name_addr_fast_path_agrees_on_generated_values(value: str) -> None:
    _check_name_addr_paths(value)


@FAST_PATH_SETTINGS
@given(URIS)
def test_uri_fast_path_agrees_on_generated_values(value: str) -> None:
    _check_uri_paths(value)


def test_uri_params_table_hands_out_copies() -> None:
    first = parse_uri("sip:a@b;lr;user=phone")
    first.params["lr"] = "changed"
    assert parse_uri("sip:a@b;lr;user=phone").params == {"lr": None, "user": "phone"}


def test_params_tag_is_the_tag_parameter() -> None:
    for text in ("", ";tag=a", ";TAG=a", ";tag", ";tag=", ";x=1;tag=a", ";tag=a;tag=b",
                 ' ; tag = "a b"', ";lr", ";tag=a b"):  # fmt: skip
        assert H.params_tag(text) == H._params(text).get("tag"), text
