"""`sipcc refdata import KIND FILE`: reference data into Postgres, and the snapshot out.

Kinds and the files they take (comma- or tab-separated, a header row; column names match
loosely, so `NPA-NXX`, `npa_nxx` and `NPA NXX` are the same column):

| kind         | shaped like                                   | columns (optional in brackets)                                   |
|--------------|-----------------------------------------------|------------------------------------------------------------------|
| `npa-nxx`    | NANPA central office code report              | State, NPA-NXX, [OCN, Company, RateCenter, EffectiveDate, Use, AssignDate, Initial/Growth, Pooled] |
| `thousands`  | NANPA thousands-block pooling report          | NPA, NXX (or NPA-NXX), X, Rate_Center, [OCN, Company, State, Effective date] |
| `lata`       | a rate center's LATA                          | State, RateCenter, LATA, [LATA_Name, EffectiveDate]               |
| `lca`        | local calling areas as rate-center pairs      | State, RateCenter, [LocalState], LocalRateCenter, [EffectiveDate] |
| `carriers`   | carrier category per operating company (OCN)  | OCN, Category, [Company, EffectiveDate]                           |
| `intl-rates` | an international rate deck (`--deck NAME`)     | Prefix, Rate, [Description, EffectiveDate]                        |

Every kind also takes an optional EndDate (the first day a row is no longer in force).
Dates are MM/DD/YYYY (NANPA's) or YYYY-MM-DD; an empty EffectiveDate means "always".

Bad rows are reported with their line numbers. The operator chooses: `skip` imports the good
rows and reports the rest; `refuse` imports nothing when any row is bad. Either way a file
whose header lacks a required column is refused whole. Rows are upserted by their key and
effective date (importing a file twice changes nothing); `--replace` first removes every
row of the kind (of the deck, for rate decks), so a new monthly report drops the codes that
left it. Each import is one transaction and tells running nodes to reload (NOTIFY).
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import asyncpg

from rater.refdata import ALWAYS, FOREVER, Block, Code, Deck, DeckRate, RefData

ON_ERROR = ("refuse", "skip")
MAX_REPORTED = 200


class RefdataError(ValueError):
    """A file that cannot be imported (as the operator asked); the message says why."""


def _norm(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


_ALIASES: dict[str, tuple[str, ...]] = {
    "state": ("state", "st"),
    "npanxx": ("npanxx",),
    "npa": ("npa",),
    "nxx": ("nxx",),
    "x": ("x", "block", "thousandsblock", "blockid"),
    "ocn": ("ocn",),
    "company": ("company", "companyname", "ocnname"),
    "ratecenter": ("ratecenter", "ratecentre", "ratecentername"),
    "effective": ("effectivedate", "effective", "effdate", "effectivefrom"),
    "end": ("enddate", "expirationdate", "effectiveto", "effectiveuntil"),
    "use": ("use",),
    "assigndate": ("assigndate",),
    "initialgrowth": ("initialgrowth",),
    "pooled": ("pooled",),
    "lata": ("lata", "latacode"),
    "lataname": ("lataname",),
    "localstate": ("localstate",),
    "localratecenter": ("localratecenter", "localratecentre"),
    "category": ("category", "carriercategory", "carriertype"),
    "prefix": ("prefix", "dialcode", "code"),
    "description": ("description", "destination"),
    "rate": ("rate", "rateperminute", "ratepermin", "perminute"),
}

# --- field parsers: each returns the value or raises ValueError with a readable message ---


def _text(v: str) -> str | None:
    v = " ".join(v.split())
    return v or None


def _rate_center(v: str) -> str | None:
    v = _text(v)
    return v.upper() if v else None


def _state(v: str) -> str:
    v = v.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", v):
        raise ValueError(f"state {v!r} is not a two-letter code")
    return v


def _date(v: str) -> date | None:
    v = v.strip().split(" ", 1)[0]
    if not v:
        return None
    for fmt in ("%m/%d/%Y", "%Y-%m-%d", "%m/%d/%y", "%Y%m%d"):
        try:
            return datetime.strptime(v, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{v!r} is not a date (MM/DD/YYYY or YYYY-MM-DD)")


def _digits(v: str, n: int, what: str, first: str = "2-9") -> str:
    v = v.strip()
    if not re.fullmatch(rf"[{first}]\d{{{n - 1}}}", v):
        raise ValueError(f"{what} {v!r} is not {n} digits starting with {first}")
    return v


def _bool(v: str) -> bool | None:
    t = v.strip().lower()
    if not t:
        return None
    if t in ("y", "yes", "true", "t", "1"):
        return True
    if t in ("n", "no", "false", "f", "0"):
        return False
    raise ValueError(f"{v!r} is not Y or N")


_CATEGORY = {
    "rboc": "rboc_ilec", "ilec": "rboc_ilec", "rbocilec": "rboc_ilec", "incumbent": "rboc_ilec",
    "wireless": "wireless", "pcs": "wireless", "cmrs": "wireless", "cellular": "wireless",
    "clec": "clec", "other": "other",
}  # fmt: skip


def _category(v: str) -> str:
    found = _CATEGORY.get(_norm(v))
    if found is None:
        raise ValueError(f"category {v.strip()!r} is not RBOC/ILEC, wireless, CLEC or other")
    return found


def _rate(v: str) -> Decimal:
    try:
        d = Decimal(v.strip().lstrip("$"))
    except InvalidOperation:
        raise ValueError(f"rate {v.strip()!r} is not a number") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"rate {v.strip()!r} must be a number >= 0")
    if d.as_tuple().exponent < -5:  # type: ignore[operator]
        raise ValueError(f"rate {v.strip()!r} has more than 5 decimal places")
    return d


def _prefix(v: str) -> str:
    t = re.sub(r"[\s\-]", "", v).lstrip("+")
    if not re.fullmatch(r"[1-9]\d{0,14}", t):
        raise ValueError(f"prefix {v.strip()!r} is not E.164 digits (country code first)")
    return t


# --- kinds ---


@dataclass(frozen=True)
class KindSpec:
    name: str
    table: str
    columns: tuple[str, ...]  # database columns, in the order `parse` returns them
    key: tuple[str, ...]  # the primary key (with effective_from)
    required: tuple[str, ...]  # logical fields the header must have
    optional: tuple[str, ...]
    parse: Callable[[dict[str, str]], tuple]
    help: str = ""
    alternatives: tuple[tuple[str, ...], ...] = ()  # groups of which one must be present


def _dates(f: dict[str, str]) -> tuple[date, date | None]:
    start = _date(f.get("effective", "")) or date.min
    end = _date(f.get("end", ""))
    if end is not None and end <= start:
        raise ValueError(f"end date {end} is not after the effective date {start}")
    return start, end


def _npanxx(f: dict[str, str]) -> tuple[str, str]:
    if f.get("npanxx", "").strip():
        raw = re.sub(r"[\s\-]", "", f["npanxx"])
        if not re.fullmatch(r"\d{6}", raw):
            raise ValueError(f"NPA-NXX {f['npanxx'].strip()!r} is not NPA-NXX")
        return _digits(raw[:3], 3, "NPA"), _digits(raw[3:], 3, "NXX")
    return _digits(f.get("npa", ""), 3, "NPA"), _digits(f.get("nxx", ""), 3, "NXX")


def _parse_code(f: dict[str, str]) -> tuple:
    npa, nxx = _npanxx(f)
    start, end = _dates(f)
    return (npa, nxx, _state(f["state"]), _rate_center(f.get("ratecenter", "")),
            _text(f.get("ocn", "")), _text(f.get("company", "")), _text(f.get("use", "")),
            _date(f.get("assigndate", "")), _text(f.get("initialgrowth", "")),
            _bool(f.get("pooled", "")), start, end)  # fmt: skip


def _parse_block(f: dict[str, str]) -> tuple:
    npa, nxx = _npanxx(f)
    x = f.get("x", "").strip()
    if not re.fullmatch(r"\d", x):
        raise ValueError(f"X {x!r} is not one digit")
    rc = _rate_center(f.get("ratecenter", ""))
    if rc is None:
        raise ValueError("rate center is empty")
    state = _state(f["state"]) if f.get("state", "").strip() else None
    start, end = _dates(f)
    return (npa, nxx, x, state, rc, _text(f.get("ocn", "")), _text(f.get("company", "")),
            start, end)  # fmt: skip


def _parse_lata(f: dict[str, str]) -> tuple:
    rc = _rate_center(f["ratecenter"])
    lata = _text(f["lata"])
    if rc is None or lata is None:
        raise ValueError("rate center and LATA must not be empty")
    start, end = _dates(f)
    return (_state(f["state"]), rc, lata, _text(f.get("lataname", "")), start, end)


def _parse_lca(f: dict[str, str]) -> tuple:
    state = _state(f["state"])
    local_state = _state(f["localstate"]) if f.get("localstate", "").strip() else state
    rc, local_rc = _rate_center(f["ratecenter"]), _rate_center(f["localratecenter"])
    if rc is None or local_rc is None:
        raise ValueError("both rate centers must be given")
    start, end = _dates(f)
    return (state, rc, local_state, local_rc, start, end)


def _parse_carrier(f: dict[str, str]) -> tuple:
    ocn = _text(f["ocn"])
    if ocn is None:
        raise ValueError("OCN is empty")
    start, end = _dates(f)
    return (ocn, _text(f.get("company", "")), _category(f["category"]), start, end)


def _parse_rate(f: dict[str, str]) -> tuple:
    start, end = _dates(f)
    # The deck column is filled in by the importer from --deck.
    return ("", _prefix(f["prefix"]), _text(f.get("description", "")), _rate(f["rate"]),
            start, end)  # fmt: skip


KINDS: dict[str, KindSpec] = {
    k.name: k
    for k in (
        KindSpec(
            "npa-nxx", "nanp_codes",
            ("npa", "nxx", "state", "rate_center", "ocn", "company", "use", "assign_date",
             "initial_growth", "pooled", "effective_from", "effective_to"),
            ("npa", "nxx", "effective_from"), ("state",),
            ("npanxx", "npa", "nxx", "ocn", "company", "ratecenter", "effective", "end", "use",
             "assigndate", "initialgrowth", "pooled"),
            _parse_code, "NANPA central office code report",
            (("npanxx", "npa"),),
        ),
        KindSpec(
            "thousands", "nanp_blocks",
            ("npa", "nxx", "x", "state", "rate_center", "ocn", "company", "effective_from",
             "effective_to"),
            ("npa", "nxx", "x", "effective_from"), ("x", "ratecenter"),
            ("npanxx", "npa", "nxx", "ocn", "company", "state", "effective", "end"),
            _parse_block, "NANPA thousands-block pooling report",
            (("npanxx", "npa"),),
        ),
        KindSpec(
            "lata", "latas",
            ("state", "rate_center", "lata", "lata_name", "effective_from", "effective_to"),
            ("state", "rate_center", "effective_from"), ("state", "ratecenter", "lata"),
            ("lataname", "effective", "end"), _parse_lata, "LATA of each rate center",
        ),
        KindSpec(
            "lca", "local_calling_areas",
            ("state", "rate_center", "local_state", "local_rate_center", "effective_from",
             "effective_to"),
            ("state", "rate_center", "local_state", "local_rate_center", "effective_from"),
            ("state", "ratecenter", "localratecenter"), ("localstate", "effective", "end"),
            _parse_lca, "local calling areas as rate-center pairs",
        ),
        KindSpec(
            "carriers", "carrier_categories",
            ("ocn", "company", "category", "effective_from", "effective_to"),
            ("ocn", "effective_from"), ("ocn", "category"), ("company", "effective", "end"),
            _parse_carrier, "carrier category per OCN",
        ),
        KindSpec(
            "intl-rates", "intl_rates",
            ("deck", "prefix", "description", "rate_per_minute", "effective_from",
             "effective_to"),
            ("deck", "prefix", "effective_from"), ("prefix", "rate"),
            ("description", "effective", "end"), _parse_rate, "international rate deck",
        ),
    )
}  # fmt: skip


@dataclass
class Parsed:
    kind: str
    rows: list[tuple] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, message)
    read: int = 0


@dataclass
class ImportReport:
    kind: str
    source: str
    read: int
    imported: int  # rows inserted or changed
    unchanged: int
    skipped: int
    errors: list[tuple[int, str]]
    deck: str | None = None

    def lines(self) -> list[str]:
        return [f"{self.source}: line {n}: {msg}" for n, msg in self.errors[:MAX_REPORTED]] + (
            [f"{self.source}: … and {len(self.errors) - MAX_REPORTED} more bad rows"]
            if len(self.errors) > MAX_REPORTED
            else []
        )


def parse_text(kind: str, text: str, deck: str = "default") -> Parsed:
    """Parse a file's text; bad rows become (line, message) errors, never exceptions.
    A header missing a required column raises RefdataError."""
    spec = KINDS.get(kind)
    if spec is None:
        raise RefdataError(f"unknown kind {kind!r}; one of: {', '.join(KINDS)}")
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise RefdataError("the file is empty (no header row)") from None
    names = [_norm(h) for h in header]
    index: dict[str, int] = {}
    for logical in spec.required + spec.optional:
        for alias in _ALIASES[logical]:
            if alias in names:
                index[logical] = names.index(alias)
                break
    missing = [f for f in spec.required if f not in index]
    for group in spec.alternatives:
        if not any(g in index for g in group):
            missing.append(" or ".join(group))
    if "npa" in index and "npanxx" not in index and "nxx" not in index:
        missing.append("nxx")
    if missing:
        raise RefdataError(
            f"{kind}: the header has no column for {', '.join(missing)} "
            f"(found: {', '.join(h for h in header if h)})"
        )
    out = Parsed(kind)
    seen: dict[tuple, int] = {}
    key_at = [spec.columns.index(k) for k in spec.key]
    for record in reader:
        line = reader.line_num
        if not record or all(not c.strip() for c in record):
            continue
        out.read += 1
        fields_ = {k: record[i] if i < len(record) else "" for k, i in index.items()}
        try:
            row = spec.parse(fields_)
        except (ValueError, KeyError) as exc:
            out.errors.append((line, str(exc)))
            continue
        if spec.table == "intl_rates":
            row = (deck, *row[1:])
        key = tuple(row[i] for i in key_at)
        if key in seen:
            out.errors.append((line, f"same key and effective date as line {seen[key]}"))
            continue
        seen[key] = line
        out.rows.append(row)
    return out


def parse_file(kind: str, path: str | Path, deck: str = "default") -> Parsed:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise RefdataError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # NANPA's reports are plain ASCII; old exports are not
    return parse_text(kind, text, deck)


async def import_parsed(
    conn: asyncpg.Connection,
    parsed: Parsed,
    source: str,
    *,
    on_error: str = "refuse",
    replace: bool = False,
    deck: str = "default",
) -> ImportReport:
    """Write parsed rows in one transaction. With errors and on_error='refuse', writes
    nothing and raises RefdataError carrying the report."""
    if on_error not in ON_ERROR:
        raise RefdataError(f"--on-error must be one of {', '.join(ON_ERROR)}")
    spec = KINDS[parsed.kind]
    is_deck = spec.table == "intl_rates"
    report = ImportReport(parsed.kind, source, parsed.read, 0, 0, len(parsed.errors),
                          parsed.errors, deck if is_deck else None)  # fmt: skip
    if parsed.errors and on_error == "refuse":
        report.skipped = parsed.read
        raise RefdataError("\n".join([*report.lines(), f"{source}: nothing imported "
                                      f"({len(parsed.errors)} bad rows; --on-error skip "
                                      "imports the good ones)"]))  # fmt: skip
    cols = spec.columns
    others = [c for c in cols if c not in spec.key]
    upsert = (
        f"INSERT INTO {spec.table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM _refdata_stage "
        f"ON CONFLICT ({', '.join(spec.key)}) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in others)
        + f" WHERE ({', '.join(f'{spec.table}.{c}' for c in others)}) IS DISTINCT FROM "
        f"({', '.join(f'EXCLUDED.{c}' for c in others)})"
    )
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('sipcc.refdata'))")
        if replace:
            if is_deck:
                await conn.execute("DELETE FROM intl_rates WHERE deck = $1", deck)
            else:
                await conn.execute(f"DELETE FROM {spec.table}")
        await conn.execute(
            f"CREATE TEMP TABLE _refdata_stage (LIKE {spec.table} INCLUDING DEFAULTS) "
            "ON COMMIT DROP"
        )
        await conn.copy_records_to_table("_refdata_stage", records=parsed.rows, columns=cols)
        status = await conn.execute(upsert)
        report.imported = int(status.rsplit(" ", 1)[-1])
        report.unchanged = len(parsed.rows) - report.imported
        await conn.execute(
            """INSERT INTO refdata_imports (kind, deck, source, rows_read, rows_imported,
                                            rows_skipped, replaced)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            parsed.kind, report.deck, source, parsed.read, report.imported, report.skipped,
            replace,
        )  # fmt: skip
        if report.imported or replace:
            await conn.execute("NOTIFY sipcc_inventory")
    return report


async def import_file(
    conn: asyncpg.Connection,
    kind: str,
    path: str | Path,
    *,
    on_error: str = "refuse",
    replace: bool = False,
    deck: str = "default",
) -> ImportReport:
    parsed = parse_file(kind, path, deck)
    return await import_parsed(conn, parsed, str(path), on_error=on_error, replace=replace,
                               deck=deck)  # fmt: skip


# --- the snapshot ---


def _ord(d: date | None, default: int) -> int:
    return default if d is None else d.toordinal()


def _group(rows: Iterable[tuple], into: dict) -> None:
    """(key, from, to, value) rows → key: versions newest first."""
    acc: dict = {}
    for key, start, end, value in rows:
        acc.setdefault(key, []).append((_ord(start, ALWAYS), _ord(end, FOREVER), value))
    for key, versions in acc.items():
        versions.sort(key=lambda v: v[0], reverse=True)
        into[key] = tuple(versions)


def build(tables: dict[str, Iterable]) -> RefData:
    """A snapshot from rows (mappings of column → value) per table name. The loader feeds
    it database records; tests and tools can feed it parsed files (`snapshot_of`)."""
    intern = sys.intern

    def s(v: str | None) -> str | None:
        return intern(v) if v is not None else None

    data = RefData()
    _group(((r["npa"] + r["nxx"], r["effective_from"], r["effective_to"],
             Code(s(r["state"]), s(r["rate_center"]), s(r["ocn"]), s(r["company"])))
            for r in tables.get("nanp_codes", ())), data.codes)  # fmt: skip
    _group(((r["npa"] + r["nxx"] + r["x"], r["effective_from"], r["effective_to"],
             Block(s(r["rate_center"]), s(r["ocn"]), s(r["state"]), s(r["company"])))
            for r in tables.get("nanp_blocks", ())), data.blocks)  # fmt: skip
    _group((((s(r["state"]), s(r["rate_center"])), r["effective_from"], r["effective_to"],
             s(r["lata"])) for r in tables.get("latas", ())), data.latas)  # fmt: skip
    _group(((s(r["ocn"]), r["effective_from"], r["effective_to"], s(r["category"]))
            for r in tables.get("carrier_categories", ())), data.categories)  # fmt: skip
    _group((((r["state"], r["rate_center"], r["local_state"], r["local_rate_center"]),
             r["effective_from"], r["effective_to"], True)
            for r in tables.get("local_calling_areas", ())), data.lca)  # fmt: skip
    by_deck: dict[str, list] = {}
    for r in tables.get("intl_rates", ()):
        by_deck.setdefault(r["deck"], []).append(
            (r["prefix"], r["effective_from"], r["effective_to"],
             DeckRate(r["prefix"], r["rate_per_minute"], r["description"] or ""))
        )  # fmt: skip
    for name, entries in by_deck.items():
        deck = Deck()
        _group(entries, deck.rates)
        data.decks[name] = deck.index()
    return data


def snapshot_of(*parsed: Parsed) -> RefData:
    """A snapshot straight from parsed files, as if they had been imported (later files
    win on equal keys, as a later import would)."""
    tables: dict[str, dict[tuple, dict]] = {}
    for p in parsed:
        spec = KINDS[p.kind]
        key_at = [spec.columns.index(k) for k in spec.key]
        rows = tables.setdefault(spec.table, {})
        for row in p.rows:
            rows[tuple(row[i] for i in key_at)] = dict(zip(spec.columns, row, strict=True))
    return build({t: rows.values() for t, rows in tables.items()})


async def load(conn: asyncpg.Connection) -> RefData:
    """The whole snapshot from the database (see load_cached)."""
    tables = {}
    for spec in KINDS.values():
        tables[spec.table] = await conn.fetch(f"SELECT {', '.join(spec.columns)} FROM {spec.table}")
    return build(tables)


_cache: dict[tuple, RefData] = {}
_CACHE_MAX = 4


async def load_cached(conn: asyncpg.Connection | asyncpg.Pool) -> RefData:
    """The snapshot, loaded again only when the reference data changed since the last load
    from the same database (its generation counter moved)."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as c:
            return await load_cached(c)
    # One snapshot of the database for the token and the data, so they agree; inside a
    # caller's transaction, that transaction already is one.
    tx = (
        contextlib.nullcontext()
        if conn.is_in_transaction()
        else conn.transaction(isolation="repeatable_read", readonly=True)
    )
    async with tx:
        row = await conn.fetchrow(
            "SELECT (SELECT oid FROM pg_database WHERE datname = current_database()) AS db, "
            "pg_postmaster_start_time() AS started, generation FROM refdata_generation"
        )
        token = (row["db"], row["started"], row["generation"])
        hit = _cache.get(token)
        if hit is not None:
            return hit
        data = await load(conn)
    data.token = token
    if len(_cache) >= _CACHE_MAX:
        _cache.pop(next(iter(_cache)))
    _cache[token] = data
    return data


async def status(conn: asyncpg.Connection) -> dict:
    """Rows per kind and the last imports, for `sipcc refdata status`."""
    counts = {name: await conn.fetchval(f"SELECT count(*) FROM {k.table}") for name, k in KINDS.items()}
    last = [dict(r) for r in await conn.fetch(
        "SELECT kind, deck, source, rows_read, rows_imported, rows_skipped, replaced, imported_at "
        "FROM refdata_imports ORDER BY id DESC LIMIT 10")]  # fmt: skip
    return {"rows": counts, "last_imports": last}
