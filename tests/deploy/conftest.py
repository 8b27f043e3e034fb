"""tests/deploy reuses the end-to-end fixtures: a real node, a SIPp carrier."""

from tests.e2e.conftest import carrier, start_node  # noqa: F401
