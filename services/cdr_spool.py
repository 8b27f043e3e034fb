"""The CDR spool: where the edge keeps CDR events while Redis cannot take them.

A CDR is money, and Redis may be away for a restart or a network fault. The publisher
then appends each event as one JSON line to a local append-only file, fsynced in small
batches (every line waiting while the previous fsync ran goes into the next one), and
later events follow them into the file so the stream sees events in the order the calls
ended. The replayer sends the files back to the stream, oldest first, and deletes each
only after Redis accepted all of it.

Each process appends to its own file and holds an exclusive `flock` on it while it lives.
A file nobody holds a lock on belongs to a process that is gone (a crash, a restart):
the next publisher of the same stream adopts it and replays it before anything new.
A replay that overlaps what reached Redis already is harmless: the writer stores one row
per (call_id, leg, started_at).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import time
from pathlib import Path

from services import logs

log = logs.get("cdr.spool")


class SpoolFile:
    """One spool file, its lock held for as long as this object is open."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.events = 0  # appended by us, or counted when adopted
        self.offset = 0  # bytes already replayed
        self.unflushed = 0  # lines queued for it, not yet on disk

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)


def _stream_tag(stream: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stream)


class CdrSpool:
    def __init__(self, directory: str | Path, stream: str, max_batch: int = 1000) -> None:
        self.dir = Path(directory)
        self.tag = _stream_tag(stream)
        self.max_batch = max_batch
        self._current: SpoolFile | None = None
        self._closed: list[SpoolFile] = []  # rotated or adopted, waiting for replay
        self._queue: list[tuple[SpoolFile, str, asyncio.Future]] = []
        self._flushing = False

    @property
    def active(self) -> bool:
        """True while events wait in the spool: new events must queue behind them."""
        return bool(self._closed) or (self._current is not None and self._current.events > 0)

    @property
    def waiting(self) -> int:
        """Events in the spool not yet replayed (adopted files are counted when read)."""
        cur = self._current.events if self._current is not None else 0
        return cur + sum(f.events for f in self._closed)

    def adopt_orphans(self) -> int:
        """Take over the files of processes that are gone (oldest first); returns how many."""
        self.dir.mkdir(parents=True, exist_ok=True)
        mine = {f.path for f in self._closed}
        if self._current is not None:
            mine.add(self._current.path)
        adopted = 0
        for path in sorted(self.dir.glob(f"{self.tag}.*.spool"), key=_created):
            if path in mine:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue  # replayed and removed by another process meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # its process is alive and appending
                continue
            if not path.exists():  # its adopter removed it between our open and lock
                os.close(fd)
                continue
            f = SpoolFile(path, fd)
            with open(fd, "rb", closefd=False) as fh:
                f.events = sum(1 for _ in fh)
            self._closed.append(f)
            adopted += 1
            log.warning("cdr_spool_adopted", file=str(path), events=f.events)
        return adopted

    def append(self, line: str) -> asyncio.Future:
        """Queue one event line; the future resolves once it is on disk (fsynced)."""
        if self._current is None:
            self._current = self._open_new()
        self._current.events += 1
        self._current.unflushed += 1
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((self._current, line, fut))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return fut

    def _open_new(self) -> SpoolFile:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{self.tag}.{time.time_ns()}.{os.getpid()}.spool"
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        fcntl.flock(fd, fcntl.LOCK_EX)
        log.warning("cdr_spool_opened", file=str(path))
        return SpoolFile(path, fd)

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # every event of this loop turn in the same write
            while self._queue:
                # One file per write: a rotation may have started the next file.
                target = self._queue[0][0]
                n = 0
                while n < len(self._queue) and n < self.max_batch and self._queue[n][0] is target:
                    n += 1
                batch = self._queue[:n]
                del self._queue[:n]
                data = "".join(line + "\n" for _, line, _ in batch).encode()
                error: OSError | None = None
                try:
                    await asyncio.to_thread(_write_sync, target.fd, data)
                except OSError as exc:
                    error = exc
                    log.error("cdr_spool_write_failed", file=str(target.path), error=repr(exc))
                target.unflushed -= len(batch)
                for _, _, fut in batch:
                    if fut.done():
                        continue
                    if error is not None:
                        fut.set_exception(error)
                    else:
                        fut.set_result(None)
        finally:
            self._flushing = False

    async def ready_files(self) -> list[SpoolFile]:
        """Close the current file for replay (new events start another) and return every
        file waiting, oldest first, once the lines queued for them are on disk."""
        if self._current is not None and self._current.events:
            # The same descriptor (and lock) reads it back: no moment another process
            # could take it for an orphan.
            self._closed.append(self._current)
            self._current = None
        while any(f.unflushed for f in self._closed):
            await asyncio.sleep(0.001)
        return list(self._closed)

    def done(self, f: SpoolFile) -> None:
        self._closed.remove(f)
        f.remove()

    def close(self) -> None:
        """Release the locks; the files stay for the next process to adopt."""
        for f in [*self._closed, *([self._current] if self._current else [])]:
            os.close(f.fd)
        self._closed.clear()
        self._current = None


def _created(path: Path) -> tuple[int, str]:
    parts = path.name.split(".")
    try:
        return int(parts[-3]), path.name
    except (IndexError, ValueError):
        return 0, path.name


def _write_sync(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    os.fsync(fd)


def read_lines(f: SpoolFile, max_lines: int) -> tuple[list[str], int]:
    """Up to max_lines whole lines from f.offset; returns them and the new offset. A torn
    last line (the process died mid-write, before its fsync returned) is left out."""
    with open(f.fd, "rb", closefd=False) as fh:
        fh.seek(f.offset)
        lines: list[str] = []
        offset = f.offset
        for raw in fh:
            if not raw.endswith(b"\n"):
                if raw.strip():
                    log.error("cdr_spool_torn_line", file=str(f.path), line=raw[:2000])
                offset += len(raw)
                break
            offset += len(raw)
            text = raw.decode("utf-8", errors="replace").strip()
            if text:
                lines.append(text)
            if len(lines) >= max_lines:
                break
        return lines, offset
