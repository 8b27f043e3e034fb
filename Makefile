# The README's two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint debs-run debs-test venv clean

venv: $(STAMP)

# The lock pins every package with hashes, so every install is the same; the project itself
# goes in editable, without dependencies, after it.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Debian packages, installed when missing (one apt-get for all of them), and why:
# - espeak-ng: speaks the registered address to a caller of 933 (gateway/readback.py);
# - libpango-1.0-0, libpangoft2-1.0-0, fonts-dejavu-core: WeasyPrint's PDF invoices
#   (services/billing/render.py) load Pango through cffi and need a font;
# - sip-tester: SIPp, the real SIP peer of the tests; Debian's SIPp has no TLS, so the TLS
#   test puts stunnel4 in front of it;
# - prometheus: promtool checks and unit-tests the alert rules in deploy/k8s (the server it
#   also installs is not started); kustomize comes with kubectl;
# - redis-server, postgresql: the CDR fault tests crash and restart a Redis and a Postgres of
#   their own (tests/support/private_services.py), never the shared ones.
RUN_DEBS  := espeak-ng libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core
TEST_DEBS := $(RUN_DEBS) sip-tester stunnel4 prometheus redis-server postgresql
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $$SUDO apt-get install -y -qq --no-install-recommends $$missing; fi
endef

debs-run:
	$(call apt_install,$(RUN_DEBS))

debs-test:
	$(call apt_install,$(TEST_DEBS))
	@command -v kubectl >/dev/null 2>&1 || echo "warning: kubectl (kustomize) missing: tests/deploy will say so"

run: venv debs-run
	$(BIN)/python -m services.launch

test: venv debs-test
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .sipcc .pytest_cache
