# The few verbs people type. Each target sets up .venv itself when it is missing.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# The torch/torchvision pair that installs from this machine's disk (x86_64, Python 3.11).
# On aarch64 use: make TORCH="torch==2.9.1 torchvision==0.24.1"
TORCH   ?= torch==2.14.1 torchvision==0.29.1
OUT     ?= runs/demo
# test processes: two share this machine's 2 cores (one PyTorch thread each); `make test WORKERS=0` runs in one
WORKERS ?= 2
export OMP_NUM_THREADS ?= 2

.PHONY: demo test lint bench clean

# --no-compile: pip would compile every module of torch, Ray and the rest to bytecode (half of
# the install's two minutes); Python compiles what is imported instead, on first use (below).
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile $(TORCH)
	$(PY) -m pip install -q --no-compile -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(VENV)/bin/obfaudit reproduce --out $(OUT)
	@echo "report: $(OUT)/report.html"

# Bytecode is written on first import even where PYTHONDONTWRITEBYTECODE is set (this machine sets
# it): else every test process would compile torch's modules again.
test: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -n $(WORKERS) --dist loadfile

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
