"""ITU-T G.711 μ-law encoding of 16-bit linear PCM (the PCMU payload, RFC 3551 §4.5.14).

Written out because the standard library's `audioop` is deprecated and gone in Python 3.13,
and the maintained alternatives need numpy; a 64 KiB table makes encoding one lookup per
sample. The segment search follows the G.711 companding law on the 14-bit magnitude, as
the reference (Sun's g711.c, which `audioop.lin2ulaw` also used) does.
"""

from __future__ import annotations

import sys
from array import array

_SEG_END = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_BIAS = 0x21  # 0x84 on the 16-bit scale
_CLIP = 8159


def encode_sample(sample: int) -> int:
    """One signed 16-bit sample → its μ-law code (0x00-0xFF, bits inverted as sent)."""
    value = sample >> 2  # 14-bit, as G.711 defines the law
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, _CLIP) + _BIAS
    for seg, end in enumerate(_SEG_END):
        if value <= end:
            return ((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask
    return 0x7F ^ mask  # cannot happen after the clip; kept as the reference has it


# Indexed by the sample's 16 bits read unsigned: 0..32767 positive, 32768..65535 negative.
_TABLE = bytes(encode_sample(u - 65536 if u > 32767 else u) for u in range(65536))

SILENCE = encode_sample(0)  # 0xFF


def encode(pcm16le: bytes) -> bytes:
    """Little-endian signed 16-bit PCM → μ-law, one byte per sample."""
    samples = array("H", pcm16le[: len(pcm16le) & ~1])
    if sys.byteorder == "big":
        samples.byteswap()
    return bytes(map(_TABLE.__getitem__, samples))
