# The few verbs people type. Each target sets up .venv itself when it is missing.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# The torch/torchvision pair that installs from this machine's disk (x86_64, Python 3.11).
# On aarch64 use: make TORCH="torch==2.9.1 torchvision==0.24.1"
TORCH   ?= torch==2.14.1 torchvision==0.29.1
OUT     ?= runs/demo
export OMP_NUM_THREADS ?= 2

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/obfaudit reproduce --out $(OUT)
	@echo "report: $(OUT)/report.html"

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/tsne_speed.py
	$(PY) benchmarks/cost.py
	$(PY) benchmarks/reproduce.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
