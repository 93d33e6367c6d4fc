# canon: `make test` runs the test suite, `make demo` runs canon's main job on the demo fleet.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test demo demo-swarm demo-swarm-clean swarm docs lint bench mutate clean bwrap

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
# bytecode, as a pip or pipx install compiles it: an editable install has none, and with
# PYTHONDONTWRITEBYTECODE every canon start compiles canonlib again (0.15 s for `sweep`)
	$(PY) -m compileall -q canonlib >/dev/null
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# the local backend runs a release's own code in a bubblewrap box (docs/operating.md, "The
# box"): a fresh machine gets Debian's bubblewrap here when make runs as root with apt-get
bwrap:
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null; } \
	  || { echo "make: canon's local backend needs bubblewrap (bwrap): apt-get install bubblewrap" >&2; exit 1; }

# two workers (pytest-xdist; tests/conftest.py says which tests share a worker): CI has 2 cores and
# much of the suite waits on child processes; `make test TEST_JOBS=0` runs it in one process
test: $(VENV)/.installed bwrap
	$(PY) -m pytest -n $(or $(TEST_JOBS),2)

demo: $(VENV)/.installed bwrap
	$(PY) -m canonlib demo demo

# the demo fleet on a real Docker Swarm (this machine's engine, brought up by scripts/swarm-up);
# it holds the swarm tests' lock, so it never runs under a test suite's leftovers check
SWARM_LOCK ?= /tmp/canon-swarm-tests.lock
# SERVERS=3: the demo over 3 servers (scripts/swarm-up --servers 3: contexts canon-s1..canon-s3)
SERVERS ?= 1
demo-swarm: $(VENV)/.installed swarm
	flock $(SWARM_LOCK) $(PY) -m canonlib demo --backend swarm --servers $(SERVERS) demo-swarm

# remove what demo-swarm left on the swarm: its canonicals' stacks, volumes, secrets, configs, networks
demo-swarm-clean: $(VENV)/.installed
	flock $(SWARM_LOCK) $(PY) -m canonlib.demo.swarm clean demo-swarm $(SERVERS)

swarm:
	scripts/swarm-up --servers $(SERVERS)

docs: $(VENV)/.installed
	$(PY) -m canonlib.cli.reference docs/reference

bench: $(VENV)/.installed
	$(PY) bench/noop_sweep.py
	$(PY) bench/sort_versions.py
	$(PY) bench/mirror_sync.py
	$(PY) bench/evidence_weekly.py
	$(PY) bench/known_red.py
	$(PY) bench/verify_offline.py
	$(PY) bench/verify_log.py
	$(PY) bench/verify_hostile.py
	$(PY) bench/swarm_cold_run.py
	$(PY) bench/report.py

# mutation testing, not part of CI: `make mutate` (the core) or `make mutate MODULE=canonlib/x.py`;
# SAMPLE=n tests a seeded sample of n mutants; JOBS=n mutmut processes (default 1)
mutate: $(VENV)/.installed
	$(PY) scripts/mutate.py $(MODULE) $(if $(SAMPLE),--sample $(SAMPLE)) --jobs $(or $(JOBS),1)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) demo demo-swarm .pytest_cache mutants
