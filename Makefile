# e-Milanówek gateway — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install bench lint typecheck clean fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Start the gateway with embedded defaults (SQLite under var/, HTTP :8080, SMTP :8025).
run: install
	mkdir -p var
	$(BIN)/emilanowek migrate
	$(BIN)/emilanowek serve

## Install what the tests need and run the whole suite.
test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

## Schemathesis against a live gateway: 0 server errors, 0 answers that break the OpenAPI
## document (scripts/fuzz_api.sh). CI runs it once, on SQLite.
fuzz: install
	bash scripts/fuzz_api.sh

## Lint: ruff, then mypy (`make typecheck`); both at zero, any error fails. Not part of
## `make test`; `.ci/run` runs it before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

## mypy on the packages and with the settings of pyproject.toml's [tool.mypy].
typecheck: install
	$(BIN)/mypy

## Benchmarks, each prints a ratio against a bare baseline measured in the same run.
bench: install
	$(BIN)/python -m bench.hook_endpoints
	$(BIN)/python -m bench.case_queue
	$(BIN)/python -m bench.smtp_inbound
	$(BIN)/python -m bench.outbox_telegram
	$(BIN)/python -m bench.grades_batch
	$(BIN)/python -m bench.library_sync
	$(BIN)/python -m bench.announcement_broadcast
	$(BIN)/python -m bench.attendance_day
	$(BIN)/python -m bench.hook_feeds

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache *.egg-info
