"""The 933 read-back's media pieces: G.711 μ-law, the 22 050 → 8 000 Hz resampler, RTP
packets, the SDP offer/answer, what is said, and the speech cache."""

from __future__ import annotations

import asyncio
import io
import math
import struct
import sys
import warnings
import wave
from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from e911_router.address import normalize
from e911_router.routing import E911Route
from gateway import readback
from gateway.media import g711, rtp, sdp, tts
from gateway.media.resample import resample

int16 = st.integers(min_value=-32768, max_value=32767)


def ulaw_decode(code: int) -> int:
    """G.711 μ-law → 16-bit linear, from the law's definition (segment, step, bias)."""
    code = ~code & 0xFF
    magnitude = ((((code & 0x0F) << 3) + 0x84) << ((code >> 4) & 0x07)) - 0x84
    return -magnitude if code & 0x80 else magnitude


def pcm(samples) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


# ---- G.711 ---------------------------------------------------------------------------


def test_g711_reference_points() -> None:
    assert g711.encode_sample(0) == g711.SILENCE == 0xFF
    assert g711.encode_sample(32767) == 0x80 and g711.encode_sample(-32768) == 0x00
    # Every code but "negative zero" (0x7F) is what its own decoded value encodes to.
    assert [c for c in range(256) if g711.encode_sample(ulaw_decode(c)) != c] == [0x7F]


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="audioop left the standard library in 3.13")
def test_g711_matches_the_standard_librarys_encoder_for_every_sample() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    every = pcm(range(-32768, 32768))
    assert g711.encode(every) == audioop.lin2ulaw(every, 2)


@given(int16)
def test_g711_error_is_within_one_step_of_its_segment(s: int) -> None:
    code = g711.encode_sample(s)
    step = 1 << (((~code >> 4) & 7) + 3)
    assert abs(ulaw_decode(code) - max(-32124, min(32124, s))) <= step


@given(int16, int16)
def test_g711_is_monotonic(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert ulaw_decode(g711.encode_sample(lo)) <= ulaw_decode(g711.encode_sample(hi))


@given(st.lists(int16, max_size=200))
def test_g711_encode_is_per_sample(samples: list[int]) -> None:
    assert g711.encode(pcm(samples)) == bytes(g711.encode_sample(s) for s in samples)


# ---- resampling ------------------------------------------------------------------------


def tone(freq: float, rate: int, seconds: float, amplitude: int = 10000) -> bytes:
    n = int(rate * seconds)
    return pcm([round(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)])


def amplitude_at(data: bytes, freq: float, rate: int) -> float:
    """The amplitude of `freq` in the signal (a single DFT bin, edges trimmed)."""
    x = array("h", data)[200:-200]
    re = sum(v * math.cos(2 * math.pi * freq * i / rate) for i, v in enumerate(x))
    im = sum(v * math.sin(2 * math.pi * freq * i / rate) for i, v in enumerate(x))
    return 2 * math.hypot(re, im) / len(x)


def test_resample_keeps_speech_band_and_length() -> None:
    out = resample(tone(1000, 22050, 1.0), 22050, 8000)
    assert len(out) // 2 == 8000
    assert amplitude_at(out, 1000, 8000) == pytest.approx(10000, rel=0.02)


def test_resample_filters_what_would_alias() -> None:
    # 6 kHz cannot exist at 8 kHz: unfiltered it would fold to 2 kHz, in the speech band.
    out = resample(tone(6000, 22050, 1.0), 22050, 8000)
    assert amplitude_at(out, 2000, 8000) < 100  # below -40 dB


def test_to_pcmu_refuses_what_espeak_would_never_give() -> None:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(b"\0" * 400)
    with pytest.raises(tts.SpeechError, match="2 channel"):
        tts.to_pcmu(buf.getvalue())


# ---- RTP -------------------------------------------------------------------------------


def test_rtp_packets_headers_and_wraparound() -> None:
    audio = bytes(range(200)) * 2  # 400 bytes: 3 packets, the last padded
    pkts = rtp.packets(audio, ssrc=0xDEADBEEF, seq=65535, timestamp=2**32 - 160)
    assert [len(p) for p in pkts] == [172, 172, 172]
    heads = [struct.unpack("!BBHII", p[:12]) for p in pkts]
    assert heads == [(0x80, 0x80, 65535, 2**32 - 160, 0xDEADBEEF),
                     (0x80, 0x00, 0, 0, 0xDEADBEEF),
                     (0x80, 0x00, 1, 160, 0xDEADBEEF)]  # fmt: skip
    payload = b"".join(p[12:] for p in pkts)
    assert payload[:400] == audio and payload[400:] == bytes([0xFF]) * 80


# ---- SDP -------------------------------------------------------------------------------

OFFER = (b"v=0\r\no=pbx 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
         b"m=audio 40000 RTP/AVP 8 0 101\r\nc=IN IP4 10.0.0.10\r\na=rtpmap:0 PCMU/8000\r\n"
         b"m=video 40002 RTP/AVP 96\r\nc=IN IP4 10.0.0.11\r\n")  # fmt: skip


def test_sdp_offer_media_address() -> None:
    assert sdp.audio_destination(OFFER) == ("10.0.0.10", 40000)  # media-level c= wins
    session_only = OFFER.replace(b"c=IN IP4 10.0.0.10\r\n", b"")
    assert sdp.audio_destination(session_only) == ("10.0.0.9", 40000)


@pytest.mark.parametrize("change", [(b"RTP/AVP 8 0 101", b"RTP/AVP 8 101"),  # no PCMU
                                    (b"m=audio 40000", b"m=audio 0"),  # stream refused
                                    (b"m=audio", b"m=image")])  # no audio  # fmt: skip
def test_sdp_offer_without_usable_pcmu(change: tuple[bytes, bytes]) -> None:
    assert sdp.audio_destination(OFFER.replace(*change)) is None


def test_sdp_answer() -> None:
    text = sdp.answer("192.0.2.1", 30000).decode()
    assert "c=IN IP4 192.0.2.1\r\n" in text and "m=audio 30000 RTP/AVP 0\r\n" in text
    assert "a=rtpmap:0 PCMU/8000\r\n" in text and "a=sendonly\r\n" in text
    assert "c=IN IP6 2001:db8::1\r\n" in sdp.answer("2001:db8::1", 30000).decode()


# ---- what is said ----------------------------------------------------------------------


def test_announcement_cases() -> None:
    a = normalize(line="201 N Franklin Street Floor 3, Tampa, FL 33602")
    case, text = readback.announcement(E911Route("basic", "E1", "", (), "+17275550106", a))
    assert case == "address"
    assert text == ("The 9 1 1 address for 7 2 7, 5 5 5, 0 1 0 6 is: 201 North Franklin Street, "
                    "Floor 3, Tampa, Florida, 3 3 6 0 2.")  # fmt: skip
    case, text = readback.announcement(E911Route("national", "E5", "", (), "+17275550109", a))
    assert case == "move_pending" and "not confirmed yet" in text and "Franklin" in text
    case, text = readback.announcement(E911Route("national", "E2", "", ()))
    assert case == "no_address" and text.startswith("No 9 1 1 address is on file for this line.")


# ---- speech ----------------------------------------------------------------------------


async def test_speech_is_synthesized_once_per_text() -> None:
    speech = tts.Speech(size=1)
    first, second = await asyncio.gather(speech.speak("nine one one"), speech.speak("nine one one"))
    assert first is second and len(first) > 8000  # over a second of 8 kHz audio
    assert await speech.speak("nine one one") is first  # cached
    await speech.speak("something else")
    assert list(speech._done) == ["something else"]  # bounded: the oldest went
