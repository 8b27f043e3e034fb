"""The little SDP (RFC 4566) a read-back needs: where the caller wants audio, whether it
takes PCMU, and our answer (RFC 3264) to it."""

from __future__ import annotations

import secrets


def audio_destination(body: bytes) -> tuple[str, int] | None:
    """The caller's audio address and port from an SDP offer offering PCMU (payload type
    0), or None: no audio stream, no PCMU, or a stream it disabled (port 0)."""
    session_host = media_host = None
    port, formats = 0, []
    in_audio = seen_audio = False
    for raw in body.decode("utf-8", errors="replace").splitlines():
        line = raw.strip()
        if line.startswith("m="):
            if seen_audio:
                break  # only the first audio stream is answered with media
            fields = line[2:].split()
            in_audio = len(fields) >= 4 and fields[0] == "audio" and fields[2] == "RTP/AVP"
            if in_audio:
                seen_audio = True
                port = int(fields[1]) if fields[1].isascii() and fields[1].isdigit() else 0
                formats = fields[3:]
        elif line.startswith("c="):
            parts = line[2:].split()
            host = parts[2].split("/")[0] if len(parts) >= 3 else None
            if in_audio:
                media_host = host
            elif not seen_audio:
                session_host = host
    host = media_host or session_host
    if not seen_audio or not host or not 0 < port < 65536 or "0" not in formats:
        return None
    return host, port


def answer(host: str, port: int) -> bytes:
    """We send PCMU and listen to nothing: sendonly (RFC 3264 §6.1)."""
    family = "IP6" if ":" in host else "IP4"
    session = secrets.randbelow(10**12)
    return (
        "v=0\r\n"
        f"o=sipcc {session} {session} IN {family} {host}\r\n"
        "s=sipcc 933 read-back\r\n"
        f"c=IN {family} {host}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=ptime:20\r\n"
        "a=sendonly\r\n"
    ).encode()
