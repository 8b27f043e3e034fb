# The README's two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint sipp espeak pango promtool faultdeps venv clean

venv: $(STAMP)

# The lock pins every package with hashes, so every install is the same; the project itself
# goes in editable, without dependencies, after it.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# SIPp is the real SIP peer of the integration tests (Debian package sip-tester); Debian's
# SIPp has no TLS, so the TLS test puts stunnel (stunnel4) in front of it.
sipp:
	@if ! command -v sipp >/dev/null 2>&1 || ! command -v stunnel >/dev/null 2>&1; then \
	  echo "installing SIPp and stunnel (apt-get install sip-tester stunnel4)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq sip-tester stunnel4; fi

# espeak-ng speaks the registered address to a caller of 933, the 911 address test
# (gateway/readback.py).
espeak:
	@if ! command -v espeak-ng >/dev/null 2>&1; then \
	  echo "installing espeak-ng for the 933 read-back (apt-get install espeak-ng)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq espeak-ng; fi

# WeasyPrint (invoice PDFs, services/billing/render.py) loads Pango through cffi, and needs a
# font; Debian's Pango libraries and DejaVu provide both.
pango:
	@if ! ldconfig -p | grep -q libpangoft2-1.0.so.0 || [ ! -d /usr/share/fonts/truetype/dejavu ]; then \
	  echo "installing Pango and fonts for PDF invoices (apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core; fi

# promtool checks and unit-tests the alert rules in deploy/k8s (Debian's prometheus package
# ships it; the server it also installs is not started). kustomize comes with kubectl.
promtool:
	@if ! command -v promtool >/dev/null 2>&1; then \
	  echo "installing promtool (apt-get install --no-install-recommends prometheus)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus; fi
	@command -v kubectl >/dev/null 2>&1 || echo "warning: kubectl (kustomize) missing: tests/deploy will say so"

# The CDR fault tests crash and restart a Redis and a Postgres of their own (never the shared
# ones, tests/support/private_services.py): they need redis-server and Postgres' server
# binaries (initdb, pg_ctl).
faultdeps:
	@if ! command -v redis-server >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "installing redis-server and postgresql for the CDR fault tests (apt-get install redis-server postgresql)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server postgresql; fi

run: venv pango espeak
	$(BIN)/python -m services.launch

test: venv sipp espeak pango promtool faultdeps
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .sipcc .pytest_cache
