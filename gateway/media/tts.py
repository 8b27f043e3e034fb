"""Text to 8 kHz μ-law speech with espeak-ng (Debian package `espeak-ng`, see the Makefile).

espeak-ng writes a 22 050 Hz 16-bit mono WAV; it is resampled (media.resample) and
G.711-encoded (media.g711) into PCMU payload bytes. The same text always gives the same
bytes, so results are cached per text: a customer calling 933 twice, or many customers at
one address, cost one synthesis.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import wave
from collections import OrderedDict

from gateway.media import g711
from gateway.media.resample import resample

VOICE = "en-us"
WORDS_PER_MINUTE = 150  # slower than espeak's 175: an address is copied down as it is heard


class SpeechError(RuntimeError):
    """espeak-ng is missing or failed; the message says how."""


def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise SpeechError("espeak-ng is not installed: `make test` installs it "
                          "(apt-get install espeak-ng)")  # fmt: skip
    return path


def to_pcmu(wav: bytes) -> bytes:
    """A 16-bit mono WAV (any rate) → 8 kHz μ-law."""
    with wave.open(io.BytesIO(wav)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise SpeechError(f"espeak-ng gave {w.getnchannels()} channel(s) of "
                              f"{8 * w.getsampwidth()} bits; expected 16-bit mono")  # fmt: skip
        rate = w.getframerate()
        # Written to a pipe, the WAV header cannot hold the length: read to the end.
        pcm = w.readframes(w.getnframes())
    return g711.encode(pcm if rate == 8000 else resample(pcm, rate, 8000))


async def synthesize(text: str) -> bytes:
    """`text` spoken as PCMU payload bytes (8 000 per second)."""
    proc = await asyncio.create_subprocess_exec(
        espeak_binary(), "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "--stdin", "--stdout",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(text.encode())
    if proc.returncode != 0 or not out:
        raise SpeechError(f"espeak-ng exited {proc.returncode}: {err.decode(errors='replace')[:200]}")
    # The filter is a few hundred ms of pure Python: off the event loop that carries calls.
    return await asyncio.to_thread(to_pcmu, out)


class Speech:
    """synthesize() with a bounded cache per text. One synthesis per text at a time, in a
    task of its own, so a caller hanging up mid-synthesis does not waste it for the next."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._done: OrderedDict[str, bytes] = OrderedDict()
        self._pending: dict[str, asyncio.Task[bytes]] = {}

    async def speak(self, text: str) -> bytes:
        audio = self._done.get(text)
        if audio is not None:
            self._done.move_to_end(text)
            return audio
        task = self._pending.get(text)
        if task is None:
            task = self._pending[text] = asyncio.get_running_loop().create_task(synthesize(text))
            task.add_done_callback(lambda t: self._store(text, t))
        return await asyncio.shield(task)

    def _store(self, text: str, task: asyncio.Task[bytes]) -> None:
        self._pending.pop(text, None)
        if task.cancelled() or task.exception() is not None:
            return  # the askers see the error; the next ask tries again
        self._done[text] = task.result()
        if len(self._done) > self.size:
            self._done.popitem(last=False)
