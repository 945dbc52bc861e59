#!/bin/bash
# The invariance defence beyond Colored-MNIST's colour (issue 26): on generated 32x32 shapes, an
# ObfNet-CNN(256) trained through a shape InfNet, undefended and with invariance to the background
# (a non-colour attribute) through the user-style counterfactual in examples/counterfactuals.py; each
# audited on the background with every attack that applies (the adversary's proxy: an exported shapes
# folder of another seed) and, with --infnet, its utility. Then two hand-written colour-blind transforms
# on Colored-MNIST (examples/colour_blind.py), audited as references for the learned defences.
#   bash benchmarks/invariance.sh OUT_DIR [LAMBDA]      (LAMBDA default 100; run from the repository root)
# (lambda 1000 collapsed this ObfNet to a constant: the background moves most pixels, so its penalty is
# far larger than colour's on a digit; 10 kept 95.6% utility, test distance 0.19; 100, 96.4% and 0.053)
# Reads: OUT/*.json (each command's JSON summary), OUT/*.err (/usr/bin/time -v).
set -u
OUT=${1:?give an output directory}; LAMBDA=${2:-100}; S=32
OBF=${OBFAUDIT:-.venv/bin/obfaudit}
mkdir -p "$OUT/m"
export OBFAUDIT_NO_PROGRESS=1
run() { local name=$1; shift; /usr/bin/time -v "$@" --json > "$OUT/$name.json" 2> "$OUT/$name.err" || echo "$name failed"; }
FIT=(--epochs 15 --schedule onecycle --lr 3e-3)
[ -d "$OUT/proxy$S" ] || $OBF data export shapes --split train --seed 7 --n 2000 --size $S --out "$OUT/proxy$S" > /dev/null
run infnet $OBF train infnet --data shapes --size $S "${FIT[@]}" --out "$OUT/m"
INF="$OUT/m/infnet-cnn-shapes"
run obf-none $OBF train obfnet --arch cnn --infnet "$INF" --bottleneck 256 "${FIT[@]}" --out "$OUT/m"
run obf-inv $OBF train obfnet --arch cnn --infnet "$INF" --bottleneck 256 "${FIT[@]}" --attribute background \
  --defence invariance --strength "$LAMBDA" --counterfactual examples.counterfactuals:shapes_background --out "$OUT/m"
for D in none inv; do
  M=$(python3 -c "import json; print(json.load(open('$OUT/obf-$D.json'))['model'])")
  run "audit-$D" $OBF audit --transform "$M" --data shapes --size $S --attribute background --infnet "$INF" \
    --proxy "$OUT/proxy$S" --out "$OUT/audit-$D" --cache "$OUT/cache"
done
for T in channel_sum channel_max; do
  run "$T" $OBF audit --transform "examples.colour_blind:$T" --out "$OUT/$T" --cache "$OUT/cache"
done
grep -H -E "Elapsed|Maximum resident" "$OUT"/*.err
