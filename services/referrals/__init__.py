"""Referral programmes (SPEC F1–F6): refer-a-friend, affiliates, invite codes.

Every rule takes the day it is judged on (`today`) or the moment (`now`) as an argument;
only the HTTP routes, the CLI and the background worker read a clock (clock.py), so tests
walk the programmes through time. docs/REFERRALS.md tells the decisions taken where the
sources are vague.

Credits and discounts reach every invoice through billing's adjustment providers
(services/billing/adjustments.py: `referral_adjustments`).
"""
