"""Configuration: environment variables with the prefix SIPCC_, and an optional TOML file.

Precedence, highest first: keyword arguments (tests), environment, the TOML file named by
SIPCC_CONFIG_FILE (or ./sipcc.toml when present), the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def split_hostport(value: str, default_port: int) -> tuple[str, int]:
    """'host:port', 'host' or '[v6]:port' → (host, port)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    return host, int(port)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIPCC_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="Postgres DSN; unset → loopback Postgres, else embedded"
    )
    redis_url: str | None = Field(default=None, description="Redis URL; unset → loopback Redis")
    redis_prefix: str = Field(default="sipcc:", description="prefix of every Redis key")
    sip_listen: str = Field(default="127.0.0.1:5060", description="SIP host:port, UDP and TCP")
    sip_advertise: str | None = Field(
        default=None, description="host:port put in Via/Record-Route (default: sip_listen)"
    )
    http_listen: str = Field(default="127.0.0.1:8080", description="HTTP API host:port")
    sip_tcp: bool = Field(default=True, description="also listen for SIP over TCP")
    sip_workers: int = Field(
        default=1, ge=1, le=64,
        description="edge processes sharing the SIP port (SO_REUSEPORT); each also owns "
        "port sip_port + 1 + index, which it puts in Via and Record-Route",
    )
    worker_index: int = Field(default=0, ge=0, description="set by the supervisor, not by hand")
    tls_port: int | None = Field(default=None, description="SIP over TLS port (needs cert/key)")
    tls_cert: str | None = Field(default=None, description="PEM certificate chain for SIP TLS")
    tls_key: str | None = Field(default=None, description="PEM private key for SIP TLS")
    tls_ca: str | None = Field(default=None, description="CA bundle to verify TLS next hops")
    tls_verify: bool = Field(default=True, description="verify TLS next hops' certificates")
    sip_realm: str = Field(default="sipcc", description="digest realm of trunk credentials")
    digest_secret: str | None = Field(
        default=None, description="nonce signing key; set the same on every edge process"
    )
    digest_algorithms: str = Field(
        default="SHA-256,MD5",
        description="challenge algorithms in order (RFC 8760: SHA-256 first); MD5 alone for "
        "PBXs that take the first challenge and know only MD5",
    )
    gc_tuning: bool = Field(
        default=True,
        description="freeze start-up objects, make full GC pauses rare and run young "
        "collections every 50 ms (services/gctune.py)",
    )
    log_level: str = "info"
    log_json: bool = True
    # A dialog whose BYE never comes is ended after this many seconds (RFC 4028 refines it).
    max_call_seconds: int = 4 * 3600
    # Trunk-slot leases expire unless refreshed; a crashed edge's slots free themselves.
    slot_ttl_seconds: int = 120
    slot_refresh_seconds: int = 30
    # Trunk-group saturation for ops (services/saturation.py): how often, how many by name.
    saturation_sample_seconds: float = Field(default=15, gt=0)
    saturation_top: int = Field(default=10, ge=0, le=100)
    # Spend velocity (services/spend.py): how often, how many customers by name.
    spend_sample_seconds: float = Field(default=30, gt=0)
    spend_top: int = Field(default=10, ge=0, le=100)
    admission_on_redis_down: Literal["fail-closed", "fail-open"] = Field(
        default="fail-closed",
        description="Redis unreachable: refuse ordinary calls (503) or admit them on this "
        "edge's own counts; 911 goes through either way (docs/SECURITY.md)",
    )
    drain_seconds: float = Field(
        default=30, ge=0, description="on SIGTERM, how long calls up may go on before they are closed"
    )
    # Seconds an unanswered INVITE may ring before the edge CANCELs it (Timer C, §16.6).
    ring_timeout_seconds: int = 180
    # Seconds a 911 attempt may stay silent (no provisional) before the edge moves on to the
    # next target, the national call center (rules E4, E7); far below Timer B's 32 s.
    e911_failover_seconds: float = Field(default=4, gt=0, le=30)
    # Overload control (gateway/overload.py): new calls beyond these get 503 + Retry-After;
    # 911 never. Set max_cps to the capacity measured for this machine (docs/BENCHMARKS.md).
    max_cps: float = Field(default=0, ge=0, description="new calls per second per SIP worker; 0: no limit")
    overload_max_lag_seconds: float = Field(
        default=0.5, ge=0, description="shed new calls while the smoothed event-loop lag is above this; 0: off"
    )
    overload_max_pending: int = Field(
        default=2000, ge=0, description="shed new calls while this many await routing; 0: off"
    )
    overload_cpu_target: float = Field(
        default=0.98, ge=0, le=1,
        description="shed the share of new calls that keeps this process's CPU near this share of a core; 0: off",
    )
    overload_max_backlog_bytes: int = Field(
        default=512 * 1024, ge=0,
        description="shed new calls while a UDP socket holds more unread octets than this; 0: off",
    )
    overload_retry_after_seconds: int = Field(default=5, ge=0)
    # SIP flood/scan guard (gateway/guard.py, docs/SECURITY.md); trunk and carrier sources exempt.
    sip_guard: bool = Field(default=True, description="drop and ban floods, scanners, guessers")
    sip_guard_rate: float = Field(default=30, gt=0, description="messages/s per untrusted source")
    sip_guard_burst: float = Field(default=60, ge=1)
    sip_guard_ban_seconds: float = Field(default=300, gt=0)
    sip_guard_auth_failures: int = Field(default=5, ge=1, description="digest failures per source per 5 min before a ban")
    sip_guard_user_failures: int = Field(default=20, ge=1, description="digest failures per username per 5 min before a 15 min lockout")
    sip_guard_scanner_agents: str | None = Field(
        default=None, description="comma list of User-Agent fragments banned at sight; unset: the built-in list, empty: none"
    )
    # HTTP API keys (services/auth.py, docs/SECURITY.md).
    api_key_cache_seconds: float = Field(
        default=30, ge=0, description="a verified key is trusted this long (also how long a revoked key may still work)"
    )
    api_auth_failures_per_minute: int = Field(
        default=30, ge=1, description="failed API keys per client address before 429"
    )
    cdr_stream: str = "cdr-events"
    cdr_batch_max: int = 10_000
    cdr_spool_dir: str | None = Field(
        default=None,
        description="where the edge spools CDR events while Redis is away (default: "
        "data_dir/cdr-spool); keep it on a persistent disk",
    )
    cdr_claim_idle_seconds: float = Field(
        default=30, gt=0, description="a writer takes over entries another read this long ago"
    )
    provision_file: str | None = Field(
        default=None, description="YAML applied by `make run` at start"
    )
    data_dir: str = ".sipcc"
    allow_in_process_admission: bool = Field(
        default=False,
        description="with no Redis, keep trunk slots in this process (single process only)",
    )
    # Billing (services/billing, docs/BILLING.md). B6: taxes and surcharges passed through,
    # a JSON list of {code, name, rate, applies_to: [line kind or kind:jurisdiction]}.
    billing_taxes: list[dict] | None = Field(
        default=None, description="B6 tax/surcharge rates; unset: USF 36.6% on interstate "
        "and international usage",
    )
    # Referral programmes (services/referrals, docs/REFERRALS.md).
    referral_link_base: str = Field(
        default="https://www.example.com/signup?coupon=",
        description="the website's sign-up URL; the e-coupon token is appended (F1)",
    )
    referral_secret: str | None = Field(
        default=None, description="affiliate link signing key; set the same on every API process"
    )
    referral_daily_cap: int = Field(default=20, ge=1, description="invitations per sender per day")
    referral_code_attempts: int = Field(
        default=10, ge=1, description="invite-code attempts per client or address per window"
    )
    referral_code_window_seconds: int = Field(default=3600, ge=1)
    affiliate_attribution_days: int = Field(
        default=30, ge=1, description="a purchase is attributed to a click this recent (F4)"
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for invitations")
    smtp_port: int = 25
    smtp_from: str = "referrals@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    sms_provider_url: str | None = Field(
        default=None, description="SMS gateway taking JSON {to, text} by POST"
    )

    @field_validator("sip_listen", "http_listen")
    @classmethod
    def _hostport(cls, v: str) -> str:
        split_hostport(v, 0)
        return v

    @property
    def sip_addr(self) -> tuple[str, int]:
        return split_hostport(self.sip_listen, 5060)

    @property
    def sip_public(self) -> tuple[str, int]:
        return split_hostport(self.sip_advertise or self.sip_listen, 5060)

    @property
    def spool_dir(self) -> Path:
        return Path(self.cdr_spool_dir or Path(self.data_dir) / "cdr-spool")

    @property
    def http_addr(self) -> tuple[str, int]:
        return split_hostport(self.http_listen, 8080)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("SIPCC_CONFIG_FILE") or (
            "sipcc.toml" if Path("sipcc.toml").exists() else None
        )
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


LOOPBACK_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/sipcc"
LOOPBACK_REDIS_URL = "redis://127.0.0.1:6379/0"
