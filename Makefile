# Make targets for the orchestrator toolkit.  `make help` lists them.
PYTHON ?= python3
CLAUDE_VERSION ?= 2.1.197
NAME ?= agent1
TASK ?=
TASKS ?=
ARGS ?=
PYTEST_ARGS ?=
# Passed through the environment so that any text (quotes, $, backticks) stays data.
export NAME TASK

.PHONY: help install test lint demo orchestrator launch parallel status resume clear

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

install: ## install the package (editable, with test extras) and the pinned Claude CLI into .claude-cli/
	$(PYTHON) -m pip install --quiet -e '.[test]'
	npm install --prefix .claude-cli --no-audit --no-fund --loglevel=error @anthropic-ai/claude-code@$(CLAUDE_VERSION)
	.claude-cli/node_modules/.bin/claude --version

test: ## run the whole test suite (real-CLI tests included)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: ## ruff over the package, scripts and tests
	$(PYTHON) -m ruff check claude_orchestrator agents tests bench

demo: ## offline demo: fake API, three parallel agents on the real CLI, a resume
	$(PYTHON) -m claude_orchestrator.demo

orchestrator: ## start an interactive orchestrator Claude with the manual in its system prompt
	claude --append-system-prompt "$$(cat ORCHESTRATOR_README.md)"

launch: ## launch one agent: make launch NAME=agent1 TASK="..." [ARGS="--wait"]
	@test -n "$$TASK" || { echo 'usage: make launch NAME=agent1 TASK="..."' >&2; exit 2; }
	$(PYTHON) agents/launch_agent.py $(ARGS) -- "$$NAME" "$$TASK"

parallel: ## launch one agent per task: make parallel TASKS='"task one" "task two"'
	@test -n '$(TASKS)' || { echo "usage: make parallel TASKS='\"task one\" \"task two\"'" >&2; exit 2; }
	$(PYTHON) agents/launch_parallel.py $(ARGS) -- $(TASKS)

status: ## show every agent's status
	$(PYTHON) agents/check_status.py $(ARGS)

resume: ## continue an agent's session: make resume NAME=agent1 TASK="..."
	@test -n "$$TASK" || { echo 'usage: make resume NAME=agent1 TASK="..."' >&2; exit 2; }
	$(PYTHON) agents/resume_agent.py $(ARGS) -- "$$NAME" "$$TASK"

clear: ## archive agents' files: make clear [NAME=agent1] (default: all)
	$(PYTHON) agents/clear_outputs.py $(if $(filter command line,$(origin NAME)),$(NAME),--all) $(ARGS)
