# GenPercept Lessons: `make lab` runs the course, `make test` runs every test (both set up .venv first).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# make test runs in TEST_WORKERS processes (pytest-xdist), each notebook whole on one worker (--dist loadscope),
# one torch thread each: on 2 cores that finishes sooner than one process with 2 threads, or two oversubscribed ones
TEST_WORKERS ?= 2

SPREAD_BUILDS ?= 0:auto 1:fp32 2:auto 3:auto

# make export-assets FILE=… writes the current mini build into one archive to hand to a room;
# make lab IMPORT=… installs such an archive first. JupyterLab refuses to start as root (containers, cloud VMs)
# without --allow-root, which make lab adds there; LAB_ARGS passes more options (e.g. --no-browser --port 8899).
FILE ?= genpercept-build.tar.gz
IMPORT ?=
LAB_ARGS ?=

.PHONY: setup assets export-assets lab test test-lib test-notebooks notebooks lint course spread rehearse clean-venv mutation

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (genpercept-lessons)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

assets: setup  ## build the mini assets (MiniScenes, VAE, mini-SD, mini-Marigold) the cache lacks, in this terminal
	$(PY) -m genpercept_lessons assets

export-assets: assets  ## write the current mini build into one archive, $(FILE) (learners: make lab IMPORT=$(FILE))
	$(PY) -m genpercept_lessons assets --export "$(FILE)"

lab: setup  ## open the course in JupyterLab at once; the mini assets build in the background (lessons wait for them)
ifneq ($(strip $(IMPORT)),)
	$(PY) -m genpercept_lessons assets --import "$(IMPORT)"
endif
	$(PY) -m genpercept_lessons assets --background
	$(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

test: assets  ## library tests + every notebook under nbval (lax: fail on errors and failed asserts)
	OMP_NUM_THREADS=1 $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -n $(TEST_WORKERS) --dist loadscope \
	  --durations=15 $(PYTEST_ARGS)

test-lib: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-notebooks: assets
	$(PY) -m pytest notebooks --nbval-lax --nbval-current-env --durations=15 $(PYTEST_ARGS)

lint: setup  ## ruff over the library, tests, tools, data scripts and the lessons' text sources (pyproject [tool.ruff])
	$(PY) -m ruff check genpercept_lessons tests tools data_scripts notebooks/sources

notebooks: setup  ## sync each notebook with its text source in notebooks/sources/ (the newer wins), strip outputs
	$(PY) -m genpercept_lessons.course.notebook_sources sync

course: setup assets  ## execute every notebook (mini profile) and write the course as an HTML site in site/
	$(PY) -m genpercept_lessons course --out site
	@echo "open site/index.html"

spread: setup  ## build each seed:precision in SPREAD_BUILDS, run the course on it, tabulate docs/robustness.md (~1 hour a build on 2 cores)
	for b in $(SPREAD_BUILDS); do \
	  $(PY) -m genpercept_lessons.course.spread measure --seed $${b%%:*} --precision $${b##*:} || exit 1; done
	$(PY) -m genpercept_lessons.course.spread table

rehearse: setup  ## run every lesson in the FULL profile on the CPU against random-weight stand-ins of the real checkpoints and datasets (LESSONS="02 03" for some; ~9 GB of stand-ins in the cache)
	$(PY) -m genpercept_lessons.course.rehearsal $(if $(LESSONS),--lessons $(LESSONS))

clean-venv:
	rm -rf $(VENV)

mutation: setup  ## plant curated one-line bugs one at a time, run the fast unit tests on each, write docs/mutation_report.md (~20 min)
	$(PY) tools/mutation_check.py
