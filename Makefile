# Make targets for the orchestrator toolkit.  `make help` lists them.
# The python every recipe runs: $(PYTHON).  `make install` installs into PYTHON
# when it is given on make's command line, else into the active virtual
# environment ($VIRTUAL_ENV), else into the project's own .venv/, created from
# BASE_PYTHON when needed: never into an externally managed system python
# (PEP 668), never with sudo.  It records that python in .orchestrator-python
# (agents/_bootstrap.py re-runs the scripts under it); the other targets run
# the recorded one.
BASE_PYTHON ?= python3
VENV := .venv
ifeq ($(origin PYTHON),command line)
  INSTALL_PYTHON := $(PYTHON)
else
  ifdef VIRTUAL_ENV
    INSTALL_PYTHON := $(VIRTUAL_ENV)/bin/python
  else
    INSTALL_PYTHON := $(VENV)/bin/python
  endif
  # the "python" line of the record (JSON, one key a line) that `agents/_bootstrap.py --record` writes
  RECORDED_PYTHON := $(shell sed -n 's/^ *"python": *"\(.*\)",*$$/\1/p' .orchestrator-python 2>/dev/null)
  PYTHON := $(or $(wildcard $(RECORDED_PYTHON)),$(INSTALL_PYTHON))
  install: PYTHON := $(INSTALL_PYTHON)
endif
# First line of the recipes that need the installed toolkit: one line instead of "No such file".
CHECK_PYTHON = @command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) does not exist: run make install first (or pass PYTHON=/path/to/python)" >&2; exit 2; }
CLAUDE_VERSION ?= 2.1.332
# older CLIs the tests also run, each in .claude-cli/versions/<version>/
CLAUDE_TEST_VERSIONS ?= 2.1.197
NAME ?= agent1
TASK ?=
TASKS ?=
TEXT ?=
ARGS ?=
PYTEST_ARGS ?=
# Test processes run side by side (pytest-xdist): most tests wait on processes they start, not on the CPU
# (on 2 cores: 4 took 3 min 50 s, 8 took 2 min 50 s for 1,035 tests, the docs' included).
# TEST_WORKERS=0 runs them one after another.
# (conftest.py's scheduler runs each document, and the browser tests, as one unit on one worker.)
TEST_WORKERS ?= 8
# Passed to the recipes through the environment, unexpanded ($(value) into a
# simple variable), so that any text (quotes, $, backticks) stays data.
export ORCH_NAME := $(value NAME)
export ORCH_TASK := $(value TASK)
export ORCH_TASKS := $(value TASKS)
export ORCH_TEXT := $(value TEXT)

.PHONY: help venv install install-cli test-deps install-slurm install-browser test lint demo orchestrator plugin plugin-dir launch parallel status wait tail dashboard web report resume message answer kill clear bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

venv: ## create .venv/ from BASE_PYTHON (again, --clear, if its python does not run); make install does it when needed
	@$(VENV)/bin/python -c 'import sys, pip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null && exit 0; \
	v=$$($(BASE_PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || { \
	  echo "make install: $(BASE_PYTHON) does not run: pass BASE_PYTHON=python3.X (3.10+), or PYTHON=/path/to/python" >&2; exit 2; }; \
	if [ "$${v%%.*}" -lt 3 ] || { [ "$${v%%.*}" -eq 3 ] && [ "$${v#*.}" -lt 10 ]; }; then \
	  echo "make install: $(BASE_PYTHON) is Python $$v, the toolkit needs 3.10+: pass BASE_PYTHON=python3.X, or PYTHON=/path/to/python" >&2; exit 2; fi; \
	$(BASE_PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "make install: $(BASE_PYTHON) (Python $$v) has no venv module: sudo apt install python$$v-venv, or pass PYTHON=/path/to/python" >&2; exit 2; }; \
	if [ -e $(VENV) ]; then what=recreating; else what=creating; fi; \
	echo "make install: $$what $(VENV)/ with $(BASE_PYTHON) (Python $$v)"; \
	$(BASE_PYTHON) -m venv --clear $(VENV)

# $(call pip_install_e,WHAT): WHAT (the project, with extras) into PYTHON, editable; editable_mode=compat: a plain
# path entry, cheaper at start-up than an import hook
pip_install_e = $(PYTHON) -m pip install --quiet --disable-pip-version-check -e $(1) --config-settings editable_mode=compat

# $(call install_cli,DIR,VERSION): @anthropic-ai/claude-code@VERSION from npm into DIR/node_modules,
# unless DIR's claude already prints that version (so a re-run is fast); then print its version.
install_cli = v=$$($(1)/node_modules/.bin/claude --version 2>/dev/null); \
	case "$$v" in "$(2) "*) ;; *) \
	  npm install --prefix $(1) --no-audit --no-fund --loglevel=error @anthropic-ai/claude-code@$(2) >/dev/null || exit 1; \
	  v=$$($(1)/node_modules/.bin/claude --version) || exit 1;; esac; \
	echo "make: $(1)/node_modules/.bin/claude is $$v"

# the extras running needs: [ask] (--ask-permission's MCP server), [web] (web_console.py); in a variable: a comma
# written inside $(call ...) would split its argument in two
INSTALL_EXTRAS := .[ask,web]
install: $(if $(filter $(VENV)/bin/python,$(INSTALL_PYTHON)),venv) ## what running needs: the package (editable) into .venv/ (or PYTHON=, or the active venv), and a Claude CLI into .claude-cli/ only if none is on PATH
	@# a venv made without pip (uv's, --without-pip) gets it from the standard library's ensurepip
	@$(PYTHON) -c 'import pip' 2>/dev/null || $(PYTHON) -m ensurepip --default-pip >/dev/null || { \
	  echo "make install: $(PYTHON) has no pip and ensurepip failed: install pip into it, or deactivate it to use .venv/" >&2; exit 2; }
	$(call pip_install_e,'$(INSTALL_EXTRAS)')
	# bytecode now: with PYTHONDONTWRITEBYTECODE set, every launch would compile the package again
	$(PYTHON) -m compileall -q claude_orchestrator agents/_bootstrap.py
	@$(PYTHON) agents/_bootstrap.py --record
	@$(MAKE) --no-print-directory install-cli

# The scripts run $$CLAUDE_BIN, else `claude` on PATH, else .claude-cli/'s (claude/invocation.py, find_claude):
# fetch one only when there is none to run.
install-cli: ## a Claude CLI (@anthropic-ai/claude-code CLAUDE_VERSION, npm) into .claude-cli/, unless CLAUDE_BIN or a claude on PATH runs
	@if [ -n "$$CLAUDE_BIN" ] && command -v "$$CLAUDE_BIN" >/dev/null; then \
	  echo "make install: the scripts will run CLAUDE_BIN=$$CLAUDE_BIN; no CLI fetched"; \
	elif found=$$(command -v claude); then \
	  echo "make install: the scripts will run $$found ($$("$$found" --version 2>/dev/null || echo "its --version failed")); no CLI fetched"; \
	else \
	  command -v npm >/dev/null || { echo "make install: no claude on PATH and no npm to fetch one: install Node.js and npm, or put claude on PATH, or set CLAUDE_BIN" >&2; exit 2; }; \
	  $(call install_cli,.claude-cli,$(CLAUDE_VERSION)); \
	fi

# What the tests need beyond running: the test extras (pytest, pytest-xdist, Sybil, ruff, Playwright) and the web
# extra the console's tests serve (again only when pyproject.toml or the python changed: .test-deps records for
# which), and the pinned CLIs they run.
# in a variable: a comma written inside $(call ...) would split its argument in two
TEST_EXTRAS := .[test,ask,web]
test-deps: ## the test extras into the python, and the pinned Claude CLIs (CLAUDE_VERSION and CLAUDE_TEST_VERSIONS) into .claude-cli/; make test and make lint run it
	$(CHECK_PYTHON)
	@key="$$(cksum < pyproject.toml | cut -d' ' -f1) $(PYTHON)"; \
	if [ "$$(cat .test-deps 2>/dev/null)" != "$$key" ]; then \
	  echo "$(PYTHON) -m pip install -e '$(TEST_EXTRAS)'"; \
	  $(call pip_install_e,'$(TEST_EXTRAS)') || exit 1; \
	  echo "$$key" > .test-deps; fi
	@command -v npm >/dev/null || { echo "make test: the tests run pinned Claude CLIs, fetched with npm: install Node.js and npm" >&2; exit 2; }
	@$(call install_cli,.claude-cli,$(CLAUDE_VERSION))
	@$(foreach v,$(CLAUDE_TEST_VERSIONS),$(call install_cli,.claude-cli/versions/$(v),$(v));) :

# $(call apt_install,TARGET,PACKAGES): apt-get install PACKAGES, as root or through sudo; without either, the
# command to run as root, exit 2
apt_install = if [ "$$(id -u)" -eq 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; else \
	  echo "make $(1): not root and no sudo: as root, run: apt-get update && apt-get install --no-install-recommends $(2)" >&2; exit 2; fi; \
	echo "make $(1): $${sudo:+sudo }apt-get install --no-install-recommends $(2)"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2) >/dev/null

# Slurm's Debian packages, for the Slurm executor and its tests (claude_orchestrator/slurm_cluster.py runs
# the daemons in a temp dir; nothing is configured system-wide).  SLURM_PACKAGES: what apt-get installs.
SLURM_PACKAGES ?= slurmctld slurmd slurm-client munge
install-slurm: ## install Slurm (apt-get: slurmctld slurmd slurm-client munge) for the Slurm executor's tests; a no-op when installed
	@PATH="$$PATH:/usr/sbin:/usr/local/sbin"; \
	if command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null; then \
	  echo "make install-slurm: Slurm is installed ($$(slurmd -V 2>/dev/null))"; exit 0; fi; \
	command -v apt-get >/dev/null || { \
	  echo "make install-slurm: no apt-get here: install Slurm's slurmctld, slurmd and client commands with your system's package manager" >&2; exit 2; }; \
	$(call apt_install,install-slurm,$(SLURM_PACKAGES))

# Debian's chromium, for the web console's tests in a real browser (tests/browser.py drives it with Playwright's
# Python API through executable_path: Playwright never downloads a browser).  BROWSER_PACKAGES: what apt-get installs.
BROWSER_PACKAGES ?= chromium fonts-liberation
install-browser: ## install Debian's chromium (apt-get) for the web console's browser tests; a no-op when installed
	@for c in "$$ORCHESTRATOR_CHROMIUM" /usr/lib/chromium/chromium; do \
	  if [ -n "$$c" ] && [ -x "$$c" ]; then echo "make install-browser: chromium is installed: $$c ($$("$$c" --version 2>/dev/null))"; exit 0; fi; done; \
	command -v apt-get >/dev/null || { \
	  echo "make install-browser: no apt-get here: install Chromium with your system's package manager and set ORCHESTRATOR_CHROMIUM=/path/to/its/binary for the tests" >&2; exit 2; }; \
	$(call apt_install,install-browser,$(BROWSER_PACKAGES))

test: test-deps ## run the whole test suite: the package's tests (real-CLI tests included) and every command the docs show
	@# bytecode first: with PYTHONDONTWRITEBYTECODE set, every script and supervisor the tests start would compile
	@# the modules edited since make install again (a quarter of the suite's CPU on 2 cores)
	@$(PYTHON) -m compileall -q claude_orchestrator agents/_bootstrap.py
	$(PYTHON) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: test-deps ## ruff over the package, scripts and tests
	$(PYTHON) -m ruff check claude_orchestrator agents tests bench conftest.py

demo: ## offline demo: fake API, three parallel agents on the real CLI, a resume
	$(CHECK_PYTHON)
	$(PYTHON) -m claude_orchestrator.devtools.demo

orchestrator: ## start an interactive orchestrator Claude with the manual in its system prompt
	@claude_bin=$$($(PYTHON) -c 'from claude_orchestrator.claude.invocation import find_claude; print(find_claude())') || exit 127; \
	exec "$$claude_bin" --append-system-prompt "$$(cat ORCHESTRATOR_README.md)"

plugin: ## install the Claude Code plugin (skill background-agents, a monitor) as orchestrator@orchestrator-local
	$(CHECK_PYTHON)
	$(PYTHON) -m claude_orchestrator.plugin install $(ARGS)

plugin-dir: ## render the plugin into .plugin-build/ and print its folder, for claude --plugin-dir
	$(CHECK_PYTHON)
	@$(PYTHON) -m claude_orchestrator.plugin path $(ARGS)

launch: ## launch one agent: make launch NAME=agent1 TASK="..." [ARGS="--wait"]
	@test -n "$$ORCH_TASK" || { echo 'usage: make launch NAME=agent1 TASK="..."' >&2; exit 2; }
	$(PYTHON) agents/launch_agent.py $(ARGS) -- "$$ORCH_NAME" "$$ORCH_TASK"

parallel: ## launch one agent per task: make parallel TASKS='"task one" "task two"'
	@test -n "$$ORCH_TASKS" || { echo "usage: make parallel TASKS='\"task one\" \"task two\"'" >&2; exit 2; }
	$(PYTHON) agents/launch_parallel.py $(ARGS) --split-tasks "$$ORCH_TASKS"

status: ## show every agent's status
	$(PYTHON) agents/check_status.py $(ARGS)

wait: ## wait for agents to end: make wait [NAME=agent1] [ARGS="--timeout 300"] (default: every active one)
	@if [ "$(origin NAME)" = "command line" ]; then \
	  $(PYTHON) agents/wait_agents.py $(ARGS) -- "$$ORCH_NAME"; \
	else \
	  $(PYTHON) agents/wait_agents.py $(ARGS); \
	fi

tail: ## follow an agent's transcript: make tail NAME=agent1
	$(PYTHON) agents/tail_agent.py -f $(ARGS) -- "$$ORCH_NAME"

dashboard: ## tmux: live status plus a pane following each active agent
	$(PYTHON) -m claude_orchestrator.dashboard $(ARGS)

web: ## the live web console: prints its URL (with a token) and opens a browser; ARGS="--port 0 --no-browser"
	$(PYTHON) agents/web_console.py $(ARGS)

report: ## one shareable HTML file of every agent: make report [ARGS="--html report.html"]
	$(PYTHON) agents/report_agents.py $(or $(ARGS),--html report.html)

resume: ## continue an agent's session: make resume NAME=agent1 TASK="..."
	@test -n "$$ORCH_TASK" || { echo 'usage: make resume NAME=agent1 TASK="..."' >&2; exit 2; }
	$(PYTHON) agents/resume_agent.py $(ARGS) -- "$$ORCH_NAME" "$$ORCH_TASK"

message: ## send a running agent a message (an ended one continues its session): make message NAME=agent1 TEXT="..." [ARGS=--wait]
	@test -n "$$ORCH_TEXT" || { echo 'usage: make message NAME=agent1 TEXT="..."' >&2; exit 2; }
	$(PYTHON) agents/message_agent.py $(ARGS) -- "$$ORCH_NAME" "$$ORCH_TEXT"

answer: ## answer an agent's permission question: make answer NAME=agent1 ARGS=allow (or ARGS="allow --always", ARGS="deny --message '...'")
	@test -n "$(strip $(ARGS))" || { echo "usage: make answer NAME=agent1 ARGS=allow (or ARGS=deny)" >&2; exit 2; }
	$(PYTHON) agents/answer_agent.py "$$ORCH_NAME" $(ARGS)

kill: ## stop agents and their process trees: make kill NAME=agent1 (default: every active agent)
	@if [ "$(origin NAME)" = "command line" ]; then \
	  $(PYTHON) agents/kill_agent.py $(ARGS) -- "$$ORCH_NAME"; \
	else \
	  $(PYTHON) agents/kill_agent.py --all $(ARGS); \
	fi

bench: ## benchmarks (never part of make test): one table of the eleven items (items 8 and 11 need Slurm, item 10 chromium); ARGS="--quick" for a smoke run
	$(CHECK_PYTHON)
	$(PYTHON) bench/run.py $(ARGS)

clear: ## archive agents' files: make clear [NAME=agent1] (default: all)
	@if [ "$(origin NAME)" = "command line" ]; then \
	  $(PYTHON) agents/clear_outputs.py $(ARGS) -- "$$ORCH_NAME"; \
	else \
	  $(PYTHON) agents/clear_outputs.py --all $(ARGS); \
	fi
