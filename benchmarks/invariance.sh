#!/bin/bash
# The invariance defence beyond Colored-MNIST's colour (issue 26): on generated 64x64 shapes, an
# ObfNet-MLP(64) trained through a shape InfNet, undefended and with invariance to the background
# (a non-colour attribute) through the user-style counterfactual in examples/counterfactuals.py; each
# audited on the background with every attack that applies (the adversary's proxy: an exported shapes
# folder of another seed) and, with --infnet, its utility. Then the floor an ObfNet whose first layer is
# linear meets on Colored-MNIST: the channel sum and the channel max of examples/colour_blind.py, audited.
#   bash benchmarks/invariance.sh OUT_DIR [LAMBDA]      (LAMBDA default 1000; run from the repository root)
# Reads: OUT/*.json (each command's JSON summary), OUT/*.err (/usr/bin/time -v).
set -u
OUT=${1:?give an output directory}; LAMBDA=${2:-1000}
OBF=${OBFAUDIT:-.venv/bin/obfaudit}
mkdir -p "$OUT/m"
export OBFAUDIT_NO_PROGRESS=1
run() { local name=$1; shift; /usr/bin/time -v "$@" --json > "$OUT/$name.json" 2> "$OUT/$name.err" || echo "$name failed"; }
[ -d "$OUT/proxy64" ] || $OBF data export shapes --split train --seed 7 --n 2000 --size 64 --out "$OUT/proxy64" > /dev/null
run infnet $OBF train infnet --data shapes --size 64 --epochs 6 --out "$OUT/m"
INF="$OUT/m/infnet-cnn-shapes"
run obf-none $OBF train obfnet --infnet "$INF" --bottleneck 64 --epochs 8 --out "$OUT/m"
run obf-inv $OBF train obfnet --infnet "$INF" --bottleneck 64 --epochs 8 --attribute background \
  --defence invariance --strength "$LAMBDA" --counterfactual examples.counterfactuals:shapes_background --out "$OUT/m"
for S in none inv; do
  M=$(python3 -c "import json,sys; print(json.load(open('$OUT/obf-$S.json'))['model'])")
  run "audit-$S" $OBF audit --transform "$M" --data shapes --size 64 --attribute background --infnet "$INF" \
    --proxy "$OUT/proxy64" --out "$OUT/audit-$S" --cache "$OUT/cache"
done
for T in channel_sum channel_max; do
  run "$T" $OBF audit --transform "examples.colour_blind:$T" --out "$OUT/$T" --cache "$OUT/cache"
done
grep -H -E "Elapsed|Maximum resident" "$OUT"/*.err
