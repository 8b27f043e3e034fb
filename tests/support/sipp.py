"""SIPp as the real SIP peer: a carrier UAS and PBX UACs, with per-message counts."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parents[1] / "sipp"


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise RuntimeError("SIPp is not installed: `make test` installs it (apt-get install sip-tester)")
    return path


def write_injection(path: Path, rows: list[tuple[str, ...]]) -> Path:
    path.write_text("SEQUENTIAL\n" + "".join(";".join(r) + ";\n" for r in rows))
    return path


@dataclass
class SippResult:
    returncode: int
    counts: dict[str, int]  # e.g. {"4_503_recv": 3, "5_200_recv": 2} from -trace_counts
    output: str


class Uas:
    """A SIPp UAS in the background, answering every call (the carrier gateway)."""

    def __init__(self, workdir: Path, ip: str = "127.0.0.3", port: int = 5060,
                 scenario: str = "uas.xml", extra: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sipp_binary(), "-sf", str(SCENARIOS / scenario), "-i", ip, "-p", str(port),
             "-nostdin", "-trace_err", "-error_file", str(workdir / "uas_errors.log"),
             "-max_socket", "1024", *extra, *_trace()],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise RuntimeError(f"SIPp UAS failed to start: {self.proc.stderr.read().decode()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _trace() -> list[str]:
    """SIPP_TRACE=1 makes every SIPp of the tests log each message it sends, receives or
    drops on purpose (-lost) to its work directory: for chasing a flaky call flow."""
    return ["-trace_msg"] if os.environ.get("SIPP_TRACE") else []


def run_uac(
    workdir: Path,
    target: str,
    injection: Path,
    *,
    calls: int,
    rate: float,
    limit: int,
    duration_ms: int,
    ip: str = "127.0.0.2",
    scenario: str = "uac.xml",
    timeout: float = 120,
    extra: tuple[str, ...] = (),
) -> SippResult:
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sipp_binary(), target, "-sf", str(SCENARIOS / scenario), "-inf", str(injection),
        "-i", ip, "-p", "0", "-m", str(calls), "-r", str(rate), "-l", str(limit),
        "-d", str(duration_ms), "-nostdin", "-trace_counts", "-trace_err",
        "-error_file", str(workdir / "uac_errors.log"), "-timeout", f"{int(timeout)}s",
        "-timeout_error", "-recv_timeout", "32000", *extra, *_trace(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, timeout=timeout + 30)
    return SippResult(proc.returncode, _counts(workdir, scenario), proc.stdout.decode(errors="replace")[-3000:]
                      + proc.stderr.decode(errors="replace")[-2000:])  # fmt: skip


def _counts(workdir: Path, scenario: str) -> dict[str, int]:
    """The last row of SIPp's -trace_counts file, as {'<code or method>_<column>': n}."""
    stem = Path(scenario).stem
    files = sorted(workdir.glob(f"{stem}_*_counts.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        return {}
    with files[-1].open() as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    header, last = rows[0], rows[-1]
    out: dict[str, int] = {}
    for name, value in zip(header, last, strict=False):
        # Columns look like '4_503_Recv': scenario message index, code or method, what.
        if name[:1].isdigit() and value.strip().isdigit():
            out[name.lower()] = int(value)
    return out
