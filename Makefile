# Make targets for the orchestrator toolkit.  `make help` lists them.
PYTHON ?= python3
CLAUDE_VERSION ?= 2.1.197
NAME ?= agent1
TASK ?=
TASKS ?=
ARGS ?=
PYTEST_ARGS ?=
# Passed to the recipes through the environment, unexpanded ($(value) into a
# simple variable), so that any text (quotes, $, backticks) stays data.
export ORCH_NAME := $(value NAME)
export ORCH_TASK := $(value TASK)
export ORCH_TASKS := $(value TASKS)

.PHONY: help install test lint demo orchestrator launch parallel status wait tail dashboard resume kill clear bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

install: ## install the package (editable, with test extras) and the pinned Claude CLI into .claude-cli/
	# editable_mode=compat: a plain path entry, cheaper at start-up than an import hook
	$(PYTHON) -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	# bytecode now: with PYTHONDONTWRITEBYTECODE set, every launch would compile the package again
	$(PYTHON) -m compileall -q claude_orchestrator
	npm install --prefix .claude-cli --no-audit --no-fund --loglevel=error @anthropic-ai/claude-code@$(CLAUDE_VERSION)
	.claude-cli/node_modules/.bin/claude --version

test: ## run the whole test suite (real-CLI tests included)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: ## ruff over the package, scripts and tests
	$(PYTHON) -m ruff check claude_orchestrator agents tests bench

demo: ## offline demo: fake API, three parallel agents on the real CLI, a resume
	$(PYTHON) -m claude_orchestrator.demo

orchestrator: ## start an interactive orchestrator Claude with the manual in its system prompt
	@claude_bin=$$($(PYTHON) -c 'from claude_orchestrator.claude_cli import find_claude; print(find_claude())') || exit 127; \
	exec "$$claude_bin" --append-system-prompt "$$(cat ORCHESTRATOR_README.md)"

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

resume: ## continue an agent's session: make resume NAME=agent1 TASK="..."
	@test -n "$$ORCH_TASK" || { echo 'usage: make resume NAME=agent1 TASK="..."' >&2; exit 2; }
	$(PYTHON) agents/resume_agent.py $(ARGS) -- "$$ORCH_NAME" "$$ORCH_TASK"

kill: ## stop agents and their process trees: make kill NAME=agent1 (default: every active agent)
	@if [ "$(origin NAME)" = "command line" ]; then \
	  $(PYTHON) agents/kill_agent.py $(ARGS) -- "$$ORCH_NAME"; \
	else \
	  $(PYTHON) agents/kill_agent.py --all $(ARGS); \
	fi

bench: ## benchmarks (never part of make test): one table of the seven figures; ARGS="--quick" for a smoke run
	$(PYTHON) bench/run.py $(ARGS)

clear: ## archive agents' files: make clear [NAME=agent1] (default: all)
	@if [ "$(origin NAME)" = "command line" ]; then \
	  $(PYTHON) agents/clear_outputs.py $(ARGS) -- "$$ORCH_NAME"; \
	else \
	  $(PYTHON) agents/clear_outputs.py --all $(ARGS); \
	fi
