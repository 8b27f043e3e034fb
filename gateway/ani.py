"""Rule A4: the originating ANI of an INVITE, and which header it came from.

The From user part is the ANI of record; P-Asserted-Identity (RFC 3325) or Remote-Party-ID
may carry the caller id instead, in the trunk's configured order (default PAI > RPID >
From). PAI may hold a sip: and a tel: value at once; the tel: one is preferred because it
is a number by definition. The source used goes on the CDR.
"""

from __future__ import annotations

from gateway.sip.headers import parse_name_addr
from gateway.sip.message import Request, SipError


def _user_of(value: str) -> str | None:
    try:
        na = parse_name_addr(value)
    except SipError:
        return None
    uri = na.uri
    if uri.scheme == "tel":
        return uri.user or None
    return uri.user or None


def _from_pai(req: Request) -> str | None:
    users = []
    for value in req.headers.get_all("P-Asserted-Identity"):
        try:
            na = parse_name_addr(value)
        except SipError:
            continue
        if na.uri.user:
            users.append((na.uri.scheme != "tel", na.uri.user))
    return min(users)[1] if users else None


def _from_rpid(req: Request) -> str | None:
    for value in req.headers.get_all("Remote-Party-ID"):
        try:
            na = parse_name_addr(value)
        except SipError:
            continue
        # privacy/screen params don't change who called; party=called is the callee.
        if na.params.get("party", "calling") == "calling" and na.uri.user:
            return na.uri.user
    return None


def _from_from(req: Request) -> str | None:
    value = req.headers.get("From")
    return _user_of(value) if value else None


_SOURCES = {"pai": _from_pai, "rpid": _from_rpid, "from": _from_from}


def oli_digits(req: Request) -> str | None:
    """Rule R12: ANI II / OLI digits from an `oli` or `isup-oli` parameter of the
    Request-URI, From or P-Asserted-Identity URI (or the user part's own parameters)."""
    candidates = [req.uri, req.headers.get("From") or "", *req.headers.get_all("P-Asserted-Identity")]
    for value in candidates:
        lower = value.lower()
        for name in ("isup-oli=", "oli="):
            at = lower.find(";" + name)
            if at >= 0:
                start = at + 1 + len(name)
                digits = ""
                for ch in value[start:]:
                    if not "0" <= ch <= "9":
                        break
                    digits += ch
                if digits:
                    return digits
    return None


def forwarded_from(req: Request) -> str | None:
    """Rule R13: the number a forwarded call was diverted from (RFC 5806 Diversion, first
    entry; else the History-Info entry before the last)."""
    for value in req.headers.get_all("Diversion"):
        user = _user_of(value)
        if user:
            return user
    history = req.headers.get_all("History-Info")
    if len(history) >= 2:
        return _user_of(history[-2])
    return None


def originating_ani(req: Request, precedence: tuple[str, ...]) -> tuple[str | None, str]:
    """(raw user part, source) by the trunk's precedence; ('from' with None when absent)."""
    for source in precedence:
        user = _SOURCES[source](req)
        if user:
            return user, source
    return None, "from"
