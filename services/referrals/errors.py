"""The one error type of the referral programmes: a refusal that names its rule."""

from __future__ import annotations


class ReferralError(ValueError):
    """A request the programmes refuse. `status` is the HTTP status the API answers with."""

    def __init__(self, message: str, *, rule: str | None = None, status: int = 422) -> None:
        super().__init__(f"{rule}: {message}" if rule else message)
        self.rule = rule
        self.status = status
