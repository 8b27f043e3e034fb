#!/usr/bin/env python3
"""SIP load-test runner: a calls-per-second ladder against the sipcc edge and Kamailio.

    .venv/bin/python loadtests/run.py --target both --rates 250,500,1000,1500 --seconds 20

For each target it starts everything it needs on loopback, runs the ladder and stops it all:

  edge      own Postgres database (sipcc_load_<pid>) and Redis prefix, `sipcc db migrate`,
            `sipcc provision apply loadtests/provision-load.yaml`, `sipcc serve` on
            127.0.0.1:<free port>: trunk by source IP, admission (Redis slot), rating,
            CDR to a Redis stream and the CDR writer into Postgres, all in one process.
  kamailio  Kamailio 5.6 with loadtests/kamailio/kamailio.cfg (tm + rr stateful proxy).
  direct    no proxy: the PBX calls the carrier directly (the load generator's own floor).

The carrier is a SIPp UAS on 127.0.0.3:5060 (loadtests/scenarios/uas.xml), the PBX a SIPp
UAC on 127.0.0.2 (loadtests/scenarios/uac.xml): INVITE -> 100/180/200 -> ACK -> pause ->
BYE -> 200. Each step offers `rate` calls/s for `--seconds`; a step passes when fewer than
`--max-fail` (0.1 %) of its calls fail and the generator really offered >= 90 % of the
rate. The ladder stops at the first rate that fails twice (`--retries 1`). Latencies
INVITE->100, INVITE->180 (and ->200) are percentiles of raw per-call values, taken with
microsecond gettimeofday stamps in the UAC scenario.

Load only ever goes to loopback addresses; every address is fixed below. Every process
started is stopped at the end (also on Ctrl-C or an error), the database dropped and the
Redis keys deleted. Output: a Markdown table on stdout and a JSON document (--json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "loadtests"
SCENARIOS = HERE / "scenarios"
PROVISION = HERE / "provision-load.yaml"
KAMAILIO_CFG = HERE / "kamailio" / "kamailio.cfg"

# The test topology (shared/DESIGN.md): fixed loopback addresses, never configurable.
PROXY_IP = "127.0.0.1"
PBX_IP = "127.0.0.2"
CARRIER_IP, CARRIER_PORT = "127.0.0.3", 5060
TRUNK_GROUP = "loadtest-main"  # from provision-load.yaml
CALLERS = [f"+1727555{n:04d}" for n in range(1000, 2000)]  # the loadtest TNs
NEW_YORK = ["+12125551234", "+12125550199", "+17185550123", "+13475550188"]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class RunError(RuntimeError):
    pass


# ---- processes ---------------------------------------------------------------------------


class Proc:
    """A child process in its own session (Ctrl-C reaches only this runner, which then
    stops its children in order), stopped by pid."""

    def __init__(self, name: str, argv: list[str], cwd: Path, logfile: Path,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.name = name
        self.argv = argv
        self.logfile = logfile
        self._fh = open(logfile, "ab")
        self.p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._fh, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def descendants(self) -> list[int]:
        return descendants(self.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        if self.alive():
            kids = self.descendants()
            with contextlib.suppress(ProcessLookupError):
                self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pid {self.pid}) did not stop in {timeout:.0f}s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    self.p.kill()
                self.p.wait()
            # Children that outlived their parent (e.g. Kamailio workers): by pid.
            deadline = time.monotonic() + 5
            for pid in kids:
                while _exists(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if _exists(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        self._fh.close()
        return self.p.returncode

    def tail(self, n: int = 4000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ppids() -> dict[int, int]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    out[int(d)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return out


def descendants(pid: int) -> list[int]:
    parents = _ppids()
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        frontier += kids
    return found


def pids_by_comm(*names: str) -> list[int]:
    """Processes by name; the name "*" means every process on the machine."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            if "*" in names:
                out.append(int(d))
                continue
            try:
                with open(f"/proc/{d}/comm") as fh:
                    if fh.read().strip() in names:
                        out.append(int(d))
            except OSError:
                pass
    return out


def cpu_of(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / CLK_TCK  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes, MB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            pass
    return round(total / 1024, 1)


def machine_busy() -> tuple[float, float]:
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:9]]  # guest time is already in user
    idle = f[3] + f[4]
    return (sum(f) - idle) / CLK_TCK, sum(f) / CLK_TCK


class CpuSampler(threading.Thread):
    """CPU seconds used by named process sets since the sampler started, once a second.

    A group is a list of pids, or a tuple of process names (rescanned every sample, e.g.
    Postgres backends come and go). A pid's CPU counts from when it is first seen; one
    that exits keeps its last value, so a group's total never goes down."""

    def __init__(self, groups: dict[str, list[int] | tuple[str, ...]]) -> None:
        super().__init__(daemon=True)
        self.groups = groups
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._seen: dict[str, dict[int, list[float]]] = {name: {} for name in groups}
        self._halt = threading.Event()

    def sample(self) -> None:
        busy, total = machine_busy()
        row: dict[str, float] = {}
        for name, spec in self.groups.items():
            pids = pids_by_comm(*spec) if isinstance(spec, tuple) else spec
            seen = self._seen[name]
            for pid in pids:
                v = cpu_of(pid)
                if v is None:
                    continue
                if pid in seen:
                    seen[pid][1] = v
                else:
                    seen[pid] = [v, v]
            row[name] = sum(last - first for first, last in seen.values())
        row["_machine_busy"], row["_machine_total"] = busy, total
        self.samples.append((time.monotonic(), row))

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(1.0)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def window(self, t0: float, t1: float) -> dict[str, dict[str, float]]:
        """Mean and peak (1 s) CPU % of one core per group over [t0, t1]."""
        rows = [(t, r) for t, r in self.samples if t0 - 0.5 <= t <= t1 + 0.5]
        if len(rows) < 2:
            return {}
        out: dict[str, dict[str, float]] = {}
        (ta, a), (tb, b) = rows[0], rows[-1]
        for name in self.groups:
            if name == "_all":
                continue
            peak = 0.0
            for (t1_, r1), (t2_, r2) in itertools.pairwise(rows):
                peak = max(peak, 100 * (r2[name] - r1[name]) / max(t2_ - t1_, 1e-6))
            out[name] = {
                "mean": round(100 * (b[name] - a[name]) / (tb - ta), 1),
                "peak": round(peak, 1),
            }
        busy = b["_machine_busy"] - a["_machine_busy"]
        total = b["_machine_total"] - a["_machine_total"]
        # Whole machine in the same unit (% of one core, nproc x 100 max), and what is
        # neither the proxy, SIPp, Redis nor Postgres (other users of the box).
        machine = round(100 * busy / total * (os.cpu_count() or 1), 1) if total else 0.0
        ours = sum(v["mean"] for v in out.values())
        out["machine"] = {"mean": machine, "peak": 0.0}
        if "_all" in self.groups:
            # Every process's CPU (same accounting as the groups) minus ours: other users.
            every = round(100 * (b["_all"] - a["_all"]) / (tb - ta), 1)
            out["other"] = {"mean": round(every - ours, 1), "peak": 0.0}
        else:
            out["other"] = {"mean": round(machine - ours, 1), "peak": 0.0}
        return out


# ---- sockets -----------------------------------------------------------------------------


def free_port(ip: str, kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def port_free(ip: str, port: int, kind: int = socket.SOCK_DGRAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((ip, port))
            return True
        except OSError:
            return False


def free_port_run(ip: str, n: int, *kinds: int) -> int:
    """A port p such that p .. p+n-1 are free for every socket kind given."""
    for _ in range(500):
        p = random.randrange(20000, 60000 - n)
        if all(port_free(ip, q, k) for q in range(p, p + n) for k in kinds):
            return p
    raise RunError(f"no run of {n} free ports on {ip}")


def media_port(ip: str) -> int:
    """SIPp binds its media echo sockets at -mp and -mp+2: find an even pair that is free."""
    for _ in range(200):
        p = random.randrange(20000, 60000, 2)
        if port_free(ip, p) and port_free(ip, p + 2):
            return p
    raise RunError(f"no free media port pair on {ip}")


def wait_port_free(ip: str, port: int, wait: float) -> None:
    deadline = time.monotonic() + wait
    said = False
    while not port_free(ip, port):
        if time.monotonic() > deadline:
            raise RunError(f"{ip}:{port} (the carrier address) stayed busy for {wait:.0f}s; "
                           "another SIPp (a test run?) holds it")  # fmt: skip
        if not said:
            log(f"{ip}:{port} is busy (another test's carrier?); waiting up to {wait:.0f}s")
            said = True
        time.sleep(1)


def udp_drops(ports: dict[str, tuple[str, int]]) -> dict[str, int]:
    """Per-socket receive drops from /proc/net/udp for the (ip, port) pairs named."""
    want = {}
    for name, (ip, port) in ports.items():
        hexip = "".join(f"{int(o):02X}" for o in reversed(ip.split(".")))
        want[f"{hexip}:{port:04X}"] = name
    out = dict.fromkeys(ports, 0)
    with open("/proc/net/udp") as fh:
        next(fh)
        for line in fh:
            f = line.split()
            if f[1] in want:
                out[want[f[1]]] += int(f[-1])
    return out


def udp_snmp() -> dict[str, int]:
    with open("/proc/net/snmp") as fh:
        lines = [ln.split() for ln in fh if ln.startswith("Udp:")]
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:], strict=False)}


# ---- SIPp --------------------------------------------------------------------------------


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise RunError("SIPp is not installed: apt-get install -y sip-tester")
    return path


def kamailio_binary() -> str:
    path = shutil.which("kamailio") or next(
        (p for p in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio") if os.access(p, os.X_OK)),
        None,
    )
    if path is None:
        raise RunError("Kamailio is not installed. Install it with:  apt-get install -y kamailio"
                       "   (Debian 12 ships 5.6.3); the runner does not install it itself.")  # fmt: skip
    return path


def write_injection(path: Path) -> Path:
    rows = [(NEW_YORK[i % len(NEW_YORK)], caller) for i, caller in enumerate(CALLERS)]
    path.write_text("SEQUENTIAL\n" + "".join(f"{d};{c};\n" for d, c in rows))
    return path


def read_stat(path: Path) -> dict[str, str]:
    """The last row of a SIPp -trace_stat file, by column name."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    header = lines[0].split(";")
    return dict(zip(header, lines[-1].split(";"), strict=False))


def offered_rate(path: Path) -> float | None:
    """Calls created per second while SIPp was creating them, from the -trace_stat rows
    (one a second): total created / (time the last call was created - start), the end
    interpolated inside its one-second row."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    if len(lines) < 3:
        return None
    header = lines[0].split(";")
    try:
        i_cur, i_start, i_tot = (
            header.index(k) for k in ("CurrentTime", "StartTime", "TotalCallCreated")
        )
    except ValueError:
        return None
    epoch = lambda v: float(v.split("\t")[-1])  # noqa: E731  'date\ttime\tepoch'
    rows = [(epoch(f[i_cur]), int(f[i_tot])) for f in (ln.split(";") for ln in lines[1:])]
    start = epoch(lines[1].split(";")[i_start])
    total = rows[-1][1]
    prev_t, prev_n = start, 0
    for t, n in rows:
        if n >= total:
            end = prev_t + (t - prev_t) * (total - prev_n) / max(n - prev_n, 1)
            return total / (end - start) if end > start else None
        prev_t, prev_n = t, n
    return None


def _int(stat: dict[str, str], key: str) -> int:
    try:
        return int(float(stat.get(key, "0") or 0))
    except ValueError:
        return 0


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[min(k, len(sorted_values) - 1)]


def latency_summary(values_ms: list[float]) -> dict[str, Any]:
    v = sorted(values_ms)
    r = lambda x: None if x is None else round(x, 3)  # noqa: E731
    return {"n": len(v), "p50": r(percentile(v, 50)), "p90": r(percentile(v, 90)),
            "p99": r(percentile(v, 99)), "p999": r(percentile(v, 99.9)),
            "max": r(v[-1]) if v else None}  # fmt: skip


def parse_timestamps(path: Path) -> dict[str, Any]:
    """Rows 'T;call;s0;u0;s100;u100;s180;u180;s200;u200' written by uac.xml at the 200."""
    d100, d180, d200, starts = [], [], [], []
    no100 = no180 = 0
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        if not line.startswith("T;"):
            continue
        f = line.split(";")
        if len(f) < 10:
            continue
        try:
            s0, u0, s1, u1, s2, u2, s3, u3 = (float(x) for x in f[2:10])
        except ValueError:
            continue
        t0 = s0 + u0 / 1e6
        starts.append(t0)
        t200 = s3 + u3 / 1e6
        d200.append((t200 - t0) * 1000)
        if s1 > 0:
            d100.append((s1 + u1 / 1e6 - t0) * 1000)
        else:
            no100 += 1
        if s2 > 0:
            d180.append((s2 + u2 / 1e6 - t0) * 1000)
        else:
            no180 += 1  # no 180, or it came after the 200 (a reordering proxy)
    offered = None
    if len(starts) > 1:
        span = max(starts) - min(starts)
        offered = (len(starts) - 1) / span if span > 0 else None
    return {"invite_100_ms": latency_summary(d100), "invite_180_ms": latency_summary(d180),
            "invite_200_ms": latency_summary(d200), "no_100_before_200": no100,
            "no_180_before_200": no180, "offered_cps_answered": offered}  # fmt: skip


def parse_rtt(workdir: Path) -> dict[str, Any]:
    """SIPp's own response-time timers (-trace_rtt): values in whole ms at the kernel's
    coarse clock (4 ms steps here), kept as a cross-check of the microsecond stamps."""
    vals: dict[str, list[float]] = {}
    for f in workdir.glob("uac_*_rtt.csv"):
        for line in f.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 3:
                with contextlib.suppress(ValueError):
                    vals.setdefault(parts[2], []).append(float(parts[1]))
    return {k: latency_summary(v) for k, v in sorted(vals.items())}


ERROR_KINDS = [
    ("unexpected_message", re.compile(r"Aborting call on unexpected message")),
    ("receive_timeout", re.compile(r"receive timeout")),
    ("max_retrans", re.compile(r"[Mm]ax(imum)? (UDP )?retrans|retransmission")),
    ("dead_call_msg", re.compile(r"Dead call")),
    ("cannot_send", re.compile(r"[Uu]nable to send|cannot send|Can't send")),
]


def classify_errors(path: Path, offset: int = 0) -> tuple[dict[str, int], list[str], int]:
    """Count SIPp -trace_err events by kind from `offset`; returns counts, 3 samples, new offset."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read().decode(errors="replace")
            new_offset = fh.tell()
    except OSError:
        return {}, [], offset
    events = re.split(r"(?=\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d+\t)", data)
    counts: dict[str, int] = {}
    samples: list[str] = []
    for ev in events:
        if not ev.strip() or ev.startswith("The following events occurred"):
            continue
        kind = next((k for k, rx in ERROR_KINDS if rx.search(ev)), "other")
        counts[kind] = counts.get(kind, 0) + 1
        if len(samples) < 3:
            samples.append(ev.strip()[:600])
    return counts, samples, new_offset


# ---- Postgres / Redis / metrics --------------------------------------------------------------


def pg_exec(dsn: str, sql: str, fetch: bool = False) -> Any:
    import asyncpg

    async def go() -> Any:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            return await (conn.fetch(sql) if fetch else conn.execute(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


def with_db(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=5)


def scrape(url: str) -> dict[str, float]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("sipcc_") and " " in line:
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def metric_delta(a: dict[str, float], b: dict[str, float], prefix: str) -> dict[str, float]:
    return {k: b[k] - a.get(k, 0.0) for k in b
            if k.startswith(prefix) and b[k] - a.get(k, 0.0) != 0}  # fmt: skip


# ---- targets -----------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    address: tuple[str, int]
    log: Proc | None = None

    def log_events(self, offset: int) -> tuple[dict[str, int], list[str], int]:
        return {}, [], offset

    def cpu_groups(self) -> dict[str, list[int]]:
        """The proxy's processes now (workers may have been restarted)."""
        if self.log is None:
            return {}
        return {self.name: [self.log.pid, *self.log.descendants()]}

    def before_step(self) -> dict[str, Any]:
        return {}

    def after_step(self, step: dict[str, Any], before: dict[str, Any]) -> None:
        pass

    def settle(self) -> None:
        time.sleep(2)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def teardown(self) -> None:
        self.stop()


class Edge(Target):
    def __init__(self, run: Runner) -> None:
        self.run = run
        self.db_name = f"sipcc_load_{os.getpid()}"
        self.dsn = with_db(run.args.postgres, self.db_name)
        self.prefix = f"sipcc_load_{os.getpid()}_{random.randrange(16**6):06x}:"
        # SIPCC_SIP_WORKERS=N: the shared SIP port plus one own port per worker
        # (sip_port + 1 + index), and one HTTP port per worker (http_port + index).
        self.workers = max(1, run.args.workers)
        self.sip_port = free_port_run(
            PROXY_IP, self.workers + 1, socket.SOCK_DGRAM, socket.SOCK_STREAM
        )
        self.http_port = free_port_run(PROXY_IP, self.workers, socket.SOCK_STREAM)
        super().__init__("edge", (PROXY_IP, self.sip_port))
        self.expected_cdrs = 0
        self.dropped = False

    @property
    def http(self) -> str:
        return f"http://{PROXY_IP}:{self.http_port}"

    def env(self) -> dict[str, str]:
        cfg = self.run.workdir / "empty-sipcc.toml"  # no stray ./sipcc.toml changes the node
        cfg.write_text("")
        return {**os.environ, "SIPCC_DATABASE_URL": self.dsn, "SIPCC_REDIS_URL": self.run.args.redis,
                "SIPCC_REDIS_PREFIX": self.prefix, "SIPCC_SIP_LISTEN": f"{PROXY_IP}:{self.sip_port}",
                "SIPCC_HTTP_LISTEN": f"{PROXY_IP}:{self.http_port}", "SIPCC_CONFIG_FILE": str(cfg),
                "SIPCC_LOG_LEVEL": self.run.args.edge_log_level,
                "SIPCC_SIP_WORKERS": str(self.workers)}  # fmt: skip

    def cli(self) -> list[str]:
        console = Path(sys.executable).parent / "sipcc"
        return [str(console)] if console.exists() else [sys.executable, "-m", "services.cli"]

    def start(self) -> None:
        run = self.run
        log(f"edge: creating database {self.db_name}, Redis prefix {self.prefix}")
        pg_exec(run.args.postgres, f'CREATE DATABASE "{self.db_name}"')
        run.cleanups.append(self.drop)
        env = self.env()
        for argv in (
            [*self.cli(), "db", "migrate"],
            [*self.cli(), "provision", "apply", str(PROVISION)],
        ):
            r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RunError(
                    f"{' '.join(argv[-3:])} failed ({r.returncode}): {r.stderr or r.stdout}"
                )
            log(f"edge: {' '.join(argv[-2:])}: {(r.stdout or r.stderr).strip().splitlines()[-1]}")
        argv = [sys.executable, "-m", "services.cli", "serve"]
        if run.args.edge_diagnose:  # same node, CDR writer watched from outside
            argv = [sys.executable, str(HERE / "edge_diag.py"), "serve"]
        if run.args.edge_profile:  # cProfile of the whole edge process, written when it stops
            argv[1:1] = ["-m", "cProfile", "-o", str(Path(run.args.edge_profile).resolve())]
        self.log = run.spawn("edge", argv, env=env)
        deadline = time.monotonic() + 30
        while True:
            if not self.log.alive():
                raise RunError(f"sipcc serve exited {self.log.p.returncode}:\n{self.log.tail()}")
            try:
                with urllib.request.urlopen(self.http + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RunError(f"sipcc serve not ready in 30 s:\n{self.log.tail()}")
            time.sleep(0.2)
        if self.workers > 1:  # the supervisor starts workers 1..N-1 once it is up
            deadline = time.monotonic() + 30
            while len(self.log.descendants()) < self.workers - 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            for i in range(1, self.workers):
                while time.monotonic() < deadline:
                    try:
                        with urllib.request.urlopen(
                            f"http://{PROXY_IP}:{self.http_port + i}/readyz", timeout=1
                        ):
                            break
                    except OSError:
                        time.sleep(0.2)
        log(f"edge: sipcc serve pid {self.log.pid} ready ({self.workers} SIP worker(s): "
            f"{[self.log.pid, *self.log.descendants()]}), SIP udp {PROXY_IP}:{self.sip_port}")  # fmt: skip

    def stop(self) -> None:
        if self.log is not None:
            rc = self.log.stop(signal.SIGTERM, timeout=40)  # it drains calls for up to 30 s
            log(f"edge: stopped (exit {rc})")
            self.log = None

    def teardown(self) -> None:
        self.drop()

    def drop(self) -> None:
        self.stop()
        if self.dropped:
            return
        self.dropped = True
        with contextlib.suppress(Exception):
            r = redis_client(self.run.args.redis)
            keys = list(r.scan_iter(match=self.prefix + "*", count=1000))
            if keys:
                r.delete(*keys)
            log(f"edge: deleted {len(keys)} Redis keys {self.prefix}*")
        try:
            pg_exec(
                self.run.args.postgres, f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'
            )
            log(f"edge: dropped database {self.db_name}")
        except Exception as exc:
            log(f"edge: could not drop database {self.db_name}: {exc!r}")

    def metrics(self) -> dict[str, float]:
        """The edge's counters summed over its workers (each serves /metrics on its port)."""
        total: dict[str, float] = {}
        for i in range(self.workers):
            for k, v in scrape(f"http://{PROXY_IP}:{self.http_port + i}/metrics").items():
                total[k] = total.get(k, 0.0) + v
        return total

    def cdr_count(self) -> tuple[int, dict[str, int]]:
        rows = pg_exec(
            self.dsn, "SELECT disposition, count(*) AS n FROM cdrs GROUP BY 1", fetch=True
        )
        by = {r["disposition"]: r["n"] for r in rows}
        return sum(by.values()), by

    def before_step(self) -> dict[str, Any]:
        return {"metrics": self.metrics(), "cdrs": self.cdr_count()}

    def after_step(self, step: dict[str, Any], before: dict[str, Any]) -> None:
        """Wait (bounded) for the CDR writer to store a row per call, then check the
        trunk-slot set is empty and take the edge's own counters."""
        self.expected_cdrs += step["attempted"]
        t0 = time.monotonic()
        n, by = self.cdr_count()
        while n < self.expected_cdrs and time.monotonic() - t0 < self.run.args.cdr_wait:
            time.sleep(0.25)
            n, by = self.cdr_count()
        n0, by0 = before["cdrs"]
        step["cdr"] = {
            "rows_written": n - n0,
            "expected": step["attempted"],
            "missing_total": max(0, self.expected_cdrs - n),
            "drain_seconds_after_uac_end": round(time.monotonic() - t0, 2),
            "by_disposition": {k: v - by0.get(k, 0) for k, v in by.items() if v - by0.get(k, 0)},
        }
        r = redis_client(self.run.args.redis)
        step["slots_held_after"] = int(r.zcard(f"{self.prefix}slots:{TRUNK_GROUP}"))
        after = self.metrics()
        b = before["metrics"]
        step["edge_metrics"] = {
            k: v for k, v in {
                **metric_delta(b, after, "sipcc_calls_total"),
                **metric_delta(b, after, "sipcc_admission_rejections_total"),
                **metric_delta(b, after, "sipcc_sip_requests_total"),
                **metric_delta(b, after, "sipcc_sip_parse_errors_total"),
                **metric_delta(b, after, "sipcc_sip_responses_sent_total"),
                **metric_delta(b, after, "sipcc_event_loop_lag_seconds"),
            }.items()
        }  # fmt: skip
        step["edge_metrics"]["active_calls_now"] = after.get("sipcc_active_calls", -1)

    def watch_point(self) -> dict[str, Any]:
        """The edge's backlog now: CDR rows stored, events still in the stream, unacked
        entries, trunk slots and dialogs held, active calls."""
        r = redis_client(self.run.args.redis)
        stream = f"{self.prefix}cdr-events"
        pending = 0
        with contextlib.suppress(Exception):
            pending = int(r.xpending(stream, "cdr-writers")["pending"])
        m = self.metrics()
        return {"cdr_rows": self.cdr_count()[0], "expected_rows": self.expected_cdrs,
                "stream_len": int(r.xlen(stream)), "stream_pending": pending,
                "slots_held": int(r.zcard(f"{self.prefix}slots:{TRUNK_GROUP}")),
                "dialog_keys": sum(1 for _ in r.scan_iter(match=f"{self.prefix}dialog:*", count=1000)),
                "active_calls": m.get("sipcc_active_calls"),
                "rss_mb": rss_mb(self.cpu_groups().get("edge", [])),
                "cdr_rows_written_metric": m.get("sipcc_cdr_rows_written_total"),
                "cdr_events_published_metric": m.get("sipcc_cdr_events_published_total")}  # fmt: skip

    def log_events(self, offset: int) -> tuple[dict[str, int], list[str], int]:
        """Warning/error lines of the edge's JSON log since `offset`."""
        assert self.log is not None
        with open(self.log.logfile, "rb") as fh:
            fh.seek(offset)
            data = fh.read().decode(errors="replace")
            new = fh.tell()
        counts: dict[str, int] = {}
        samples: list[str] = []
        for line in data.splitlines():
            try:
                rec = json.loads(line)
                level, event = str(rec.get("level", "")), str(rec.get("event", ""))
            except (ValueError, AttributeError):
                level, event = (
                    ("error" if "Traceback" in line or "Error" in line else ""),
                    line[:80],
                )
            if level.lower() in ("warning", "error", "critical", "exception"):
                key = f"{level.lower()}:{event}"
                counts[key] = counts.get(key, 0) + 1
                if len(samples) < 3:
                    samples.append(line[:600])
        return counts, samples, new

    def settle(self) -> None:
        """Until the edge holds no call (bounded), then a short pause."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.metrics().get("sipcc_active_calls", 0) <= 0:
                break
            time.sleep(0.25)
        time.sleep(2)


class Kamailio(Target):
    def __init__(self, run: Runner) -> None:
        self.run = run
        self.binary = kamailio_binary()
        self.port = free_port(PROXY_IP)
        super().__init__("kamailio", (PROXY_IP, self.port))

    def version(self) -> str:
        r = subprocess.run([self.binary, "-v"], capture_output=True, text=True, timeout=10)
        return (r.stdout.splitlines() or ["?"])[0]

    def start(self) -> None:
        argv = [self.binary, "-DD", "-E", "-f", str(KAMAILIO_CFG), "-m", str(self.run.args.kamailio_shm),
                "-M", "16", "-A", f"KAM_PORT={self.port}",
                "-A", f"KAM_CHILDREN={self.run.args.kamailio_children}",
                "-A", f'KAM_CARRIER="sip:{CARRIER_IP}:{CARRIER_PORT}"']  # fmt: skip
        self.log = self.run.spawn("kamailio", argv)
        self.run.cleanups.append(self.stop)
        deadline = time.monotonic() + 15
        while port_free(PROXY_IP, self.port):
            if not self.log.alive():
                raise RunError(f"kamailio exited {self.log.p.returncode}:\n{self.log.tail()}")
            if time.monotonic() > deadline:
                raise RunError(f"kamailio did not bind {PROXY_IP}:{self.port}:\n{self.log.tail()}")
            time.sleep(0.1)
        time.sleep(0.5)  # workers forked
        log(f"kamailio: pid {self.log.pid} ({1 + len(self.log.descendants())} processes), "
            f"udp {PROXY_IP}:{self.port}, {self.run.args.kamailio_children} UDP children")  # fmt: skip

    def stop(self) -> None:
        if self.log is not None:
            rc = self.log.stop(signal.SIGTERM, timeout=10)
            log(f"kamailio: stopped (exit {rc})")
            self.log = None

    def log_events(self, offset: int) -> tuple[dict[str, int], list[str], int]:
        assert self.log is not None
        with open(self.log.logfile, "rb") as fh:
            fh.seek(offset)
            data = fh.read().decode(errors="replace")
            new = fh.tell()
        counts: dict[str, int] = {}
        samples: list[str] = []
        for line in data.splitlines():
            m = re.search(r"\b(CRITICAL|ERROR|WARNING|ALERT|BUG)\b", line)
            if m:
                counts[m.group(1).lower()] = counts.get(m.group(1).lower(), 0) + 1
                if len(samples) < 3:
                    samples.append(line[:600])
        return counts, samples, new

    def settle(self) -> None:
        time.sleep(3)


class Direct(Target):
    def __init__(self, run: Runner) -> None:
        self.run = run
        super().__init__("direct", (CARRIER_IP, CARRIER_PORT))

    def start(self) -> None:
        log("direct: no proxy, the UAC calls the UAS itself (the generator's floor)")

    def stop(self) -> None:
        pass


# ---- the runner --------------------------------------------------------------------------


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix=f"sipcc-load-{os.getpid()}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []
        self.cleanups: list = []
        self.injection = write_injection(self.workdir / "calls.csv")

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> Proc:  # fmt: skip
        p = Proc(name, argv, cwd or self.workdir, self.workdir / f"{name}.log", env)
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as exc:
                log(f"cleanup step failed: {exc!r}")
        self.cleanups.clear()
        for p in reversed(self.procs):
            if p.alive():
                log(f"stopping {p.name} (pid {p.pid})")
            p.stop(signal.SIGTERM, timeout=10)
        self.procs.clear()

    # -- UAS / UAC --

    def start_uas(self, tag: str) -> Proc:
        wait_port_free(CARRIER_IP, CARRIER_PORT, self.args.port_wait)
        d = self.workdir / f"uas-{tag}"
        d.mkdir(exist_ok=True)
        argv = [sipp_binary(), "-sf", str(SCENARIOS / "uas.xml"), "-i", CARRIER_IP, "-p", str(CARRIER_PORT),
                "-mp", str(media_port(CARRIER_IP)), "-nostdin", "-buff_size", str(self.args.buff_size),
                "-rtcheck", "loose",  # a retransmitted INVITE is known by its headers, not bytes
                "-trace_err", "-error_file", str(d / "uas_errors.log"),
                "-trace_stat", "-stf", str(d / "uas_stat.csv"), "-fd", "5"]  # fmt: skip
        uas = self.spawn(f"uas-{tag}", argv, cwd=d)
        time.sleep(0.5)
        if not uas.alive():
            raise RunError(f"SIPp UAS did not start:\n{uas.tail()}")
        log(f"carrier: SIPp UAS pid {uas.pid} on {CARRIER_IP}:{CARRIER_PORT}")
        return uas

    def run_uac(
        self, target: Target, rate: int, seconds: float, d: Path
    ) -> tuple[Proc, list[str], float]:
        calls = max(1, round(rate * seconds))
        port = free_port(PBX_IP)
        bound = int(seconds + self.args.call_ms / 1000 + 45)
        argv = [sipp_binary(), f"{target.address[0]}:{target.address[1]}",
                "-sf", str(SCENARIOS / "uac.xml"), "-inf", str(self.injection),
                "-i", PBX_IP, "-p", str(port), "-mp", str(media_port(PBX_IP)),
                "-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(self.args.max_concurrent),
                "-d", str(self.args.call_ms), "-recv_timeout", str(self.args.recv_timeout_ms),
                "-timeout", f"{bound}s", "-timeout_error", "-nostdin",
                "-buff_size", str(self.args.buff_size),
                "-trace_stat", "-stf", str(d / "uac_stat.csv"), "-fd", "1",
                "-trace_logs", "-log_file", str(d / "uac_times.log"),
                "-trace_err", "-error_file", str(d / "uac_errors.log"),
                "-trace_rtt", "-rtt_freq", "100"]  # fmt: skip
        if self.args.trace_msg:
            argv += ["-trace_msg", "-message_file", str(d / "uac_messages.log")]
        if isinstance(target, Edge) and target.workers > 1:
            # SO_REUSEPORT spreads by source address and port: one UDP socket per call,
            # or every call would land on the same worker.
            argv += ["-t", "un", "-max_socket", "15000"]
        return self.spawn(f"uac-{d.name}", argv, cwd=d), argv, float(bound + 15)

    def wait_quiet(self) -> float:
        """Before a step, wait (bounded) until the machine is near idle: between steps our
        own processes use next to nothing, so what is busy is someone else's."""
        deadline = time.monotonic() + self.args.quiet_wait
        said = False
        while True:
            # per-process accounting, the same as the step's "other" (/proc/stat's idle
            # is not trustworthy in every VM)
            t0 = time.monotonic()
            c0 = {pid: cpu_of(pid) for pid in pids_by_comm("*")}
            time.sleep(2)
            c1 = {pid: cpu_of(pid) for pid in c0}
            used = sum(c1[p] - c0[p] for p in c0 if c0[p] is not None and c1[p] is not None)
            busy = 100 * used / (time.monotonic() - t0)
            if busy <= self.args.quiet_threshold or time.monotonic() > deadline:
                if said or busy > self.args.quiet_threshold:
                    log(f"machine busy {busy:.0f} % of a core before the step")
                return round(busy, 1)
            if not said:
                log(f"machine busy {busy:.0f} % of a core (other users, or the proxy still "
                    f"catching up): waiting up to {self.args.quiet_wait:.0f}s for it to calm down")  # fmt: skip
                said = True

    def step(
        self, target: Target, uas: Proc, rate: int, seconds: float, label: str
    ) -> dict[str, Any]:
        busy_before = self.wait_quiet() if self.args.quiet_wait > 0 else None
        d = self.workdir / f"{target.name}-{label}"
        d.mkdir(parents=True, exist_ok=True)
        drops_ports = {"proxy": target.address, "carrier_uas": (CARRIER_IP, CARRIER_PORT)}
        before = target.before_step()
        uas_err_off = getattr(uas, "_err_off", 0)
        log_off = getattr(target, "_log_off", 0)
        drops0, snmp0 = udp_drops(drops_ports), udp_snmp()
        uac, argv, bound = self.run_uac(target, rate, seconds, d)
        groups: dict[str, list[int] | tuple[str, ...]] = {
            **target.cpu_groups(), "sipp_uac": [uac.pid], "sipp_uas": [uas.pid],
            "redis": ("redis-server",), "postgres": ("postgres",),
            # the kernel's network receive work when it runs outside the processes
            "ksoftirqd": tuple(f"ksoftirqd/{i}" for i in range(os.cpu_count() or 1)),
            "_all": ("*",),  # every process, for "other"
        }  # fmt: skip
        sampler = CpuSampler(groups)
        t0 = time.monotonic()
        sampler.start()
        try:
            uac.p.wait(bound)
        except subprocess.TimeoutExpired:
            log(f"UAC still running after {bound:.0f}s: stopping it")
            uac.stop(signal.SIGTERM, timeout=5)
        t_end = time.monotonic()
        proxy_rss = {name: rss_mb(pids) for name, pids in target.cpu_groups().items()}
        sampler.stop()
        uac.stop()
        self.procs.remove(uac)
        drops1, snmp1 = udp_drops(drops_ports), udp_snmp()
        stat = read_stat(d / "uac_stat.csv")
        attempted = _int(stat, "TotalCallCreated")
        ok = _int(stat, "SuccessfulCall(C)")
        failed_sipp = _int(stat, "FailedCall(C)")
        failed = max(0, attempted - ok)
        times = parse_timestamps(d / "uac_times.log")
        answered_rate = times.pop("offered_cps_answered")
        offered = (
            offered_rate(d / "uac_stat.csv")
            or answered_rate
            or (attempted / seconds if seconds else 0)
        )
        errs, err_samples, _ = classify_errors(d / "uac_errors.log")
        uas_errs, uas_samples, uas._err_off = classify_errors(  # type: ignore[attr-defined]
            Path(uas.argv[uas.argv.index("-error_file") + 1]), uas_err_off
        )
        log_counts, log_samples, target._log_off = target.log_events(log_off)  # type: ignore[attr-defined]
        ratio = failed / attempted if attempted else 1.0
        step: dict[str, Any] = {
            "target": target.name, "rate": rate, "label": label, "seconds": seconds,
            "call_ms": self.args.call_ms, "attempted": attempted, "successful": ok,
            "failed": failed, "failed_sipp": failed_sipp, "unfinished": max(0, failed - failed_sipp),
            "failure_ratio": round(ratio, 6), "offered_cps": round(offered, 1),
            "retransmissions": _int(stat, "Retransmissions(C)"),
            "uac_exit": uac.p.returncode, "uac_wall_seconds": round(t_end - t0, 1),
            **times,
            "sipp_rtd_ms": parse_rtt(d),
            "cpu_percent_of_one_core": sampler.window(t0 + 1, t0 + seconds),
            "proxy_rss_mb_after": proxy_rss,
            "udp_drops": {k: drops1[k] - drops0[k] for k in drops_ports},
            "udp_rcvbuf_errors_machine": snmp1.get("RcvbufErrors", 0) - snmp0.get("RcvbufErrors", 0),
            "uac_errors": errs, "uac_error_samples": err_samples,
            "uas_errors": uas_errs, "uas_error_samples": uas_samples,
            "proxy_log_events": log_counts, "proxy_log_samples": log_samples,
            "uac_command": " ".join(argv), "workdir": str(d),
        }  # fmt: skip
        target.after_step(step, before)
        reasons = []
        if attempted == 0:
            reasons.append("no call attempted")
        if ratio >= self.args.max_fail:
            reasons.append(f"{failed}/{attempted} calls failed ({100 * ratio:.3f} %)")
        if offered < 0.9 * rate:
            reasons.append(f"generator offered {offered:.0f}/s < 90 % of {rate}/s")
        step["passed"] = not reasons
        step["why_not"] = "; ".join(reasons)
        step["machine_busy_before_step"] = busy_before
        other = step["cpu_percent_of_one_core"].get("other", {}).get("mean", 0.0)
        step["disturbed"] = other > self.args.quiet_threshold
        if step["disturbed"]:
            step["why_not"] += f" (disturbed: other processes used {other:.0f} % of a core)"
        cpu = step["cpu_percent_of_one_core"]
        log(f"{target.name} {rate}/s [{label}]: {attempted} calls, {failed} failed "
            f"({100 * ratio:.3f} %), offered {offered:.0f}/s, "
            f"100 p50/p99 {step['invite_100_ms']['p50']}/{step['invite_100_ms']['p99']} ms, "
            f"180 p50/p99 {step['invite_180_ms']['p50']}/{step['invite_180_ms']['p99']} ms, "
            f"CPU {target.name} {cpu.get(target.name, {}).get('mean')} % uac "
            f"{cpu.get('sipp_uac', {}).get('mean')} % uas {cpu.get('sipp_uas', {}).get('mean')} %"
            f" -> {'PASS' if step['passed'] else 'FAIL: ' + step['why_not']}")  # fmt: skip
        return step

    def post_watch(self, target: Target) -> list[dict[str, Any]]:
        """After the ladder, with no load: does the target work off its backlog?"""
        log(f"{target.name}: watching the backlog for {self.args.post_watch:.0f}s without load")
        points = []
        t0 = time.monotonic()
        while True:
            t = time.monotonic() - t0
            p = {"t": round(t, 1), **target.watch_point()}  # type: ignore[attr-defined]
            points.append(p)
            if (self.args.edge_diagnose and t >= 6 and p.get("stream_len") and target.log is not None
                    and not getattr(self, "_dumped", False)):  # fmt: skip
                # CDR events sit in the stream with no load: ask the edge where its tasks are.
                self._dumped = True
                os.kill(target.log.pid, signal.SIGUSR1)
                log(
                    f"  stream not draining: asked the edge for its asyncio task stacks ({target.log.logfile})"
                )
            if len(points) % 5 == 1:
                log(f"  t={p['t']:.0f}s " + " ".join(f"{k}={v}" for k, v in p.items() if k != "t"))
            if t >= self.args.post_watch:
                return points
            time.sleep(2)

    def ladder(self, target: Target, result: dict[str, Any]) -> None:
        """Run the ladder on `target`, filling `result` as it goes (kept on Ctrl-C)."""
        steps: list[dict[str, Any]] = []
        result.update(target=target.name, max_clean_cps=0, stopped="interrupted", steps=steps)
        best = 0
        stopped = "all rates passed"
        uas = None
        completed = False
        try:
            target.start()
            uas = self.start_uas(target.name)
            if self.args.warmup_seconds > 0:
                log(
                    f"{target.name}: warm-up {self.args.warmup_rate}/s for {self.args.warmup_seconds}s"
                )
                w = self.step(
                    target, uas, self.args.warmup_rate, self.args.warmup_seconds, "warmup"
                )
                w["warmup"] = True
                steps.append(w)
                target.settle()
            for rate in self.args.rates:
                passed = False
                attempt, tries = 0, self.args.retries + 1
                while attempt < tries:
                    label = f"{rate}cps" + (f"-retry{attempt}" if attempt else "")
                    s = self.step(target, uas, rate, self.args.seconds, label)
                    s["attempt"] = attempt + 1
                    steps.append(s)
                    target.settle()
                    attempt += 1
                    if s["passed"]:
                        passed = True
                        break
                    if target.log is not None and not target.log.alive():
                        break
                    if s.get("disturbed") and tries < self.args.retries + 2:
                        tries += 1  # someone else took the CPU: one more try, not a verdict
                if target.log is not None and not target.log.alive():
                    stopped = f"{target.name} process died at {rate}/s:\n{target.log.tail()}"
                    break
                if not passed:
                    stopped = f"stopped at {rate}/s: {steps[-1]['why_not']}"
                    break
                best = rate
                result["max_clean_cps"] = best
            result["stopped"] = stopped
            completed = True
        finally:
            for p in [p for p in self.procs if p.name.startswith("uac-")]:
                p.stop()
                self.procs.remove(p)
            if uas is not None:
                uas.stop()
                self.procs.remove(uas)
            try:
                if completed and self.args.post_watch > 0 and hasattr(target, "watch_point"):
                    result["post_watch"] = self.post_watch(target)
            finally:
                target.teardown()


# ---- output ------------------------------------------------------------------------------


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}" if v < 100 else f"{v:.0f}"
    return str(v)


def markdown(doc: dict[str, Any]) -> str:
    out = []
    hdr = ("| target | rate/s | offered/s | calls | failed | fail % | INVITE→100 p50 / p99 ms "
           "| INVITE→180 p50 / p99 ms | retrans | CPU proxy / uac / uas % | result |")  # fmt: skip
    out += [hdr, "|" + "---|" * 11]
    for lad in doc["ladders"]:
        for s in lad["steps"]:
            cpu = s["cpu_percent_of_one_core"]
            c = lambda n, cpu=cpu: fmt(cpu.get(n, {}).get("mean"))  # noqa: E731
            proxy_cpu = c(lad["target"]) if lad["target"] != "direct" else "-"
            label = s["rate"] if not s.get("warmup") else f"{s['rate']} (warm-up)"
            if s.get("attempt", 1) > 1:
                label = f"{s['rate']} (retry)"
            result = (
                "warm-up"
                if s.get("warmup")
                else ("pass" if s["passed"] else "FAIL: " + s["why_not"])
            )
            if s.get("disturbed") and s["passed"]:
                result += f" (disturbed: other {c('other')} %)"
            out.append(
                f"| {lad['target']} | {label} | {fmt(s['offered_cps'])} | {s['attempted']} | {s['failed']} "
                f"| {100 * s['failure_ratio']:.3f} "
                f"| {fmt(s['invite_100_ms']['p50'])} / {fmt(s['invite_100_ms']['p99'])} "
                f"| {fmt(s['invite_180_ms']['p50'])} / {fmt(s['invite_180_ms']['p99'])} "
                f"| {s['retransmissions']} | {proxy_cpu} / {c('sipp_uac')} / {c('sipp_uas')} | {result} |"
            )  # fmt: skip
    out.append("")
    for lad in doc["ladders"]:
        out.append(f"- **{lad['target']}**: highest rate with < {100 * doc['config']['max_fail']:g} % "
                   f"failed calls: **{lad['max_clean_cps']} calls/s** ({lad['stopped'].splitlines()[0]})")  # fmt: skip
    return "\n".join(out)


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def cmd(*argv: str) -> str:
        try:
            r = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    git = cmd("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    import hashlib

    digest = hashlib.sha256()
    for pkg in ("gateway", "rater", "services", "e911_router"):
        for f in sorted((ROOT / pkg).rglob("*.py")):
            digest.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "debian": Path("/etc/debian_version").read_text().strip() if Path("/etc/debian_version").exists() else "?",
            "python": platform.python_version(), "sipp": cmd(sipp_binary(), "-v") if shutil.which("sipp") else "?",
            "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
            "git_head": git, "tracked_files_modified": bool(dirty),
            "source_sha256_12": digest.hexdigest()[:12]}  # fmt: skip


def _shown_python() -> str:
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(ROOT))  # .venv/bin/python
    except ValueError:
        return str(exe)


def parse_rates(text: str) -> list[int]:
    rates = [int(x) for x in text.replace(" ", "").split(",") if x]
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be positive integers, e.g. 250,500,1000")
    return rates


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    ap.add_argument("--target", choices=["edge", "kamailio", "both", "direct"], default="both")
    ap.add_argument(
        "--rates",
        type=parse_rates,
        default=parse_rates("250,500,750,1000,1500,2000,3000"),
        help="calls/s per step, increasing (default 250,500,750,1000,1500,2000,3000)",
    )
    ap.add_argument(
        "--seconds", type=float, default=20, help="seconds of load per step (default 20)"
    )
    ap.add_argument(
        "--call-ms", type=int, default=1000, help="pause between ACK and BYE (default 1000)"
    )
    ap.add_argument(
        "--max-fail", type=float, default=0.001, help="failure ratio a step must stay under"
    )
    ap.add_argument(
        "--retries", type=int, default=1, help="re-runs of a failing rate before stopping"
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="edge SIP worker processes (SIPCC_SIP_WORKERS, default 1)",
    )
    ap.add_argument("--warmup-seconds", type=float, default=3)
    ap.add_argument("--warmup-rate", type=int, default=50)
    ap.add_argument("--kamailio-children", type=int, default=4)
    ap.add_argument("--kamailio-shm", type=int, default=512, help="Kamailio shared memory, MB")
    ap.add_argument("--edge-log-level", default="info")
    ap.add_argument(
        "--edge-profile",
        metavar="FILE",
        help="run the edge under cProfile, stats to FILE (slows it: for finding hot spots)",
    )
    ap.add_argument(
        "--max-concurrent",
        type=int,
        default=9000,
        help="SIPp -l; below the 10,000 trunks so admission never refuses (default 9000)",
    )
    ap.add_argument("--recv-timeout-ms", type=int, default=10000)
    ap.add_argument("--buff-size", type=int, default=4 * 1024 * 1024, help="SIPp socket buffers")
    ap.add_argument(
        "--cdr-wait", type=float, default=30, help="max seconds to wait for CDR rows per step"
    )
    ap.add_argument(
        "--edge-diagnose",
        action="store_true",
        help="run the edge through loadtests/edge_diag.py (logs how the CDR writer "
        "task ends; SIGUSR1 dumps asyncio task stacks to the edge log)",
    )
    ap.add_argument(
        "--post-watch",
        type=float,
        default=0,
        metavar="SECONDS",
        help="edge: after the ladder, watch CDR/slot/dialog backlog without load",
    )
    ap.add_argument(
        "--port-wait", type=float, default=180, help="max seconds to wait for 127.0.0.3:5060"
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=120,
        metavar="SECONDS",
        help="before each step, wait up to this long for other users' CPU to calm down (0: off)",
    )
    ap.add_argument(
        "--quiet-threshold",
        type=float,
        default=30,
        metavar="PERCENT",
        help="machine CPU (%% of one core) counted as quiet; a step where other processes "
        "used more is marked disturbed and gets one extra try (default 30)",
    )
    ap.add_argument("--trace-msg", action="store_true", help="SIPp -trace_msg (low rates only)")
    ap.add_argument(
        "--postgres",
        default=os.environ.get(
            "SIPCC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    ap.add_argument(
        "--redis", default=os.environ.get("SIPCC_TEST_REDIS", "redis://127.0.0.1:6379/0")
    )
    ap.add_argument("--workdir", help="keep logs here (default: a new /tmp/sipcc-load-<pid>-* dir)")
    ap.add_argument("--json", dest="json_out", help="write the JSON result here")
    ap.add_argument("--markdown", dest="md_out", help="write the Markdown table here")
    args = ap.parse_args(argv)
    if args.rates != sorted(args.rates):
        ap.error("--rates must increase")
    if args.workers < 1:
        ap.error("--workers must be at least 1")

    def on_term(signum, _frame):  # SIGTERM → the same cleanup as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # A runner started in the background by a shell inherits SIGINT ignored: take it back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    names = {"both": ["edge", "kamailio"]}.get(args.target, [args.target])
    try:
        sipp_binary()
        if "kamailio" in names:
            kamailio_binary()
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    runner = Runner(args)
    log(f"workdir {runner.workdir}")
    started = dt.datetime.now(dt.UTC)
    doc: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": " ".join([_shown_python(), *sys.argv]),
        "machine": machine_info(),
        "config": {k: v for k, v in vars(args).items() if k not in ("json_out", "md_out")},
        "ladders": [],
    }
    code = 0
    try:
        for name in names:
            target: Target = {"edge": Edge, "kamailio": Kamailio, "direct": Direct}[name](runner)
            if isinstance(target, Kamailio):
                doc["machine"]["kamailio"] = target.version()
            doc["ladders"].append({})
            runner.ladder(target, doc["ladders"][-1])
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        code = 130
    except RunError as exc:
        log(f"error: {exc}")
        code = 1
    except Exception:
        import traceback

        log("unexpected error:\n" + traceback.format_exc())
        code = 1
    finally:
        runner.cleanup()
    doc["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    doc["workdir"] = str(runner.workdir)
    text = json.dumps(doc, indent=2, default=str)
    json_path = Path(args.json_out) if args.json_out else runner.workdir / "result.json"
    json_path.write_text(text)
    md = markdown(doc) if doc["ladders"] else "(no results)"
    if args.md_out:
        Path(args.md_out).write_text(md + "\n")
    print(md)
    log(f"JSON: {json_path}   logs: {runner.workdir}")
    return code


if __name__ == "__main__":
    sys.exit(main())
