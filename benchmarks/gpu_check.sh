#!/usr/bin/env bash
# The device check of one GPU lease, prepared to run in one call (issues 17 and 28):
# the smoke preset on cuda (every stage kind once), the default preset's wall time, an audit of a
# 2,000-image folder with --budget quick and standard, and the paper preset at full scale
# (60,000 training images written by benchmarks/make_idx.py) with
# a time limit, each with per-stage times. Run from the repository root on the GPU machine,
# with .whl/ carried: wheels of the packages its image may lack (only the missing ones are
# installed). Writes to $OUT; the run directories stay in /tmp.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
PAPER_LIMIT=${PAPER_LIMIT:-300}
mkdir -p "$OUT"
need=()
for pair in sklearn:scikit_learn skimage:scikit_image lazy_loader:lazy_loader imageio:imageio \
  tifffile:tifffile networkx:networkx matplotlib:matplotlib contourpy:contourpy cycler:cycler \
  fontTools:fonttools kiwisolver:kiwisolver pyparsing:pyparsing jinja2:jinja2 markupsafe:markupsafe \
  threadpoolctl:threadpoolctl joblib:joblib mlxtend:mlxtend openTSNE:opentsne adjustText:adjusttext; do
  python3 -c "import ${pair%%:*}" 2>/dev/null || need+=(.whl/"${pair##*:}"-*.whl)
done
echo "installing ${#need[@]} wheels: ${need[*]}"
if [ ${#need[@]} -gt 0 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "${need[@]}" || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD/src OBFAUDIT_NO_PROGRESS=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, scipy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'threads', torch.get_num_threads(), 'scipy', scipy.__version__)"
since() { echo "$(( ($(date +%s%N) - $1) / 1000000 )) ms"; }

t0=$(date +%s%N)
timeout 90 python3 -m obfaudit.cli reproduce --preset smoke --device cuda --out /tmp/smoke --json \
  > "$OUT/smoke.json" 2> "$OUT/smoke.log"
echo "smoke preset on cuda: rc=$? wall=$(since "$t0")"
tail -2 "$OUT/smoke.log"

timeout 180 python3 benchmarks/reproduce.py --preset default --device cuda --run-dir /tmp/default \
  --out "$OUT/default-bench.json" 2> "$OUT/default.log"
echo "default preset on cuda: rc=$?"
tail -3 "$OUT/default.log"

# the README's audit example as a screen and in full, on a 2,000-image folder (issue 28)
python3 -m obfaudit.cli data export colored-mnist --n 2000 --out /tmp/my-data > /dev/null
for budget in quick standard; do
  t0=$(date +%s%N)
  timeout 300 python3 -m obfaudit.cli audit --transform identity --data /tmp/my-data --attribute colour \
    --device cuda --budget "$budget" --out "/tmp/audit-$budget" --cache /tmp/audit-cache > "$OUT/audit-$budget.txt" \
    2> "$OUT/audit-$budget.log"
  echo "audit --budget $budget on cuda: rc=$? wall=$(since "$t0")"
done

python3 benchmarks/make_idx.py /tmp/mnist-full
timeout "$PAPER_LIMIT" python3 benchmarks/reproduce.py --preset paper --data-root /tmp/mnist-full \
  --device cuda --run-dir /tmp/paper --out "$OUT/paper-bench.json" 2> "$OUT/paper.log"
echo "paper preset (full scale) on cuda: rc=$? (124: stopped at ${PAPER_LIMIT} s)"
tail -3 "$OUT/paper.log"
nvidia-smi --query-gpu=memory.used --format=csv,noheader
