"""The referral lines join every invoice through billing's adjustment hook
(services/billing/adjustments.py: PROVIDERS). Installed when this package is imported —
the HTTP app and the `sipcc` CLI both import it — and idempotent."""

from __future__ import annotations


def install() -> None:
    from services.billing import adjustments as hook
    from services.referrals.adjustments import billing_provider

    if billing_provider not in hook.PROVIDERS:
        hook.PROVIDERS.append(billing_provider)
