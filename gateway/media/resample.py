"""22 050 Hz → 8 000 Hz for speech: a polyphase windowed-sinc low-pass resampler.

espeak-ng speaks at 22 050 Hz; PCMU is 8 000 Hz. Dropping or interpolating samples would
fold everything above 4 kHz (the hiss of s, f, th) back into the band as noise, so each
output sample is a Blackman-windowed sinc (cut off at 3.6 kHz, the top of the telephone
band with room for the filter's transition) over the input around it. The ratio is
rational (160/441), so there are 160 distinct filters, computed once.
"""

from __future__ import annotations

import math
import operator
import sys
from array import array
from functools import lru_cache

HALF_TAPS = 24  # input samples each side of an output instant


@lru_cache(maxsize=4)
def _phases(rate_in: int, rate_out: int, cutoff: float) -> tuple[int, int, list[list[float]]]:
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    fc = cutoff / rate_in  # cycles per input sample
    phases = []
    for p in range(up):
        frac = p / up  # the output instant lies `frac` input samples after its base sample
        taps = []
        for k in range(-HALF_TAPS + 1, HALF_TAPS + 1):
            x = k - frac
            sinc = 2 * fc if x == 0 else math.sin(2 * math.pi * fc * x) / (math.pi * x)
            w = (x + HALF_TAPS) / (2 * HALF_TAPS)  # 0..1 across the window
            blackman = 0.42 - 0.5 * math.cos(2 * math.pi * w) + 0.08 * math.cos(4 * math.pi * w)
            taps.append(sinc * blackman)
        gain = sum(taps)  # unity at DC for every phase, so no phase-dependent ripple
        phases.append([t / gain for t in taps])
    return up, down, phases


def resample(pcm16le: bytes, rate_in: int, rate_out: int = 8000, cutoff: float = 3600.0) -> bytes:
    """Signed 16-bit little-endian mono PCM at `rate_in` → the same at `rate_out`."""
    up, down, phases = _phases(rate_in, rate_out, cutoff)
    src = array("h", pcm16le[: len(pcm16le) & ~1])
    if sys.byteorder == "big":
        src.byteswap()
    n_in = len(src)
    pad = [0.0] * (HALF_TAPS + 1)
    x = pad + list(src) + pad  # x[i + HALF_TAPS + 1] is src[i]
    out = array("h")
    n_out = n_in * up // down
    mul = operator.mul
    for n in range(n_out):
        base, p = divmod(n * down, up)
        start = base + 2  # x index of src[base - HALF_TAPS + 1]
        v = sum(map(mul, x[start : start + 2 * HALF_TAPS], phases[p]))
        out.append(max(-32768, min(32767, round(v))))
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()
