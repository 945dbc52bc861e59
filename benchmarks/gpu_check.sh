#!/usr/bin/env bash
# The device check of one GPU lease, prepared to run in one call (see the issues):
# reproduce --preset smoke and the default preset on cuda with wall times, plus the
# train, attack and audit commands with --device cuda. Run from the repository root on the GPU
# machine, with the wheels it lacks in .whl/ (mlxtend, openTSNE, adjustText). Writes to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src OBFAUDIT_NO_PROGRESS=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'threads', torch.get_num_threads())"
obf() { python3 -m obfaudit.cli "$@"; }
since() { echo "$(( ($(date +%s%N) - $1) / 1000000 )) ms"; }
t0=$(date +%s%N)
obf reproduce --preset smoke --device cuda --out /tmp/smoke --json > "$OUT/smoke.json" 2> "$OUT/smoke.log"
echo "smoke preset on cuda: rc=$? wall=$(since $t0)"
tail -3 "$OUT/smoke.log"
m=/tmp/smoke/models
t0=$(date +%s%N)
obf train infnet --device cuda --epochs 1 --out /tmp/m --json > /dev/null 2> "$OUT/train.log"
echo "train infnet --device cuda: rc=$? wall=$(since $t0)"
t0=$(date +%s%N)
obf attack --attack recnet colornet pathnet tsne --obfnet $m/obfnet-mlp-b8-colored-mnist \
  --infnet $m/infnet-cnn-colored-mnist --device cuda --epochs 2 --n-train 600 --n-test 210 \
  --n-proxy 1400 --n-tsne 150 --out /tmp/att --json > "$OUT/attack.json" 2> "$OUT/attack.log"
echo "attack --device cuda: rc=$? wall=$(since $t0)"
tail -2 "$OUT/attack.log"
t0=$(date +%s%N)
obf audit --transform $m/obfnet-mlp-b64-colored-mnist --device cuda --repeats 2 --epochs 3 \
  --n-proxy 3000 --out /tmp/audit --json > "$OUT/audit.json" 2> "$OUT/audit.log"
echo "audit --device cuda: rc=$? wall=$(since $t0)"
tail -2 "$OUT/audit.log"
python3 benchmarks/reproduce.py --preset default --device cuda --run-dir /tmp/default \
  --out "$OUT/default-bench.json" 2> "$OUT/default.log"
echo "default preset on cuda: rc=$?"
tail -4 "$OUT/default.log"
cp /tmp/default/results.json "$OUT/default-results.json" 2>/dev/null
