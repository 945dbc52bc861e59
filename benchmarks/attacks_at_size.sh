#!/bin/bash
# The attacks through the identity control on generated shapes at real sizes (issue 25): RecNet, the
# eavesdropper's decoder, ColorNet and the judge must read a visible attribute (background) at 64x64
# and 128x128, and nothing may read the random one. 2,000 training / 500 test images; the adversary's
# proxy is an exported shapes folder of another seed. Then the ResNet-18 split sweep, timed alone.
#   bash benchmarks/attacks_at_size.sh OUT_DIR [SIZES]        (SIZES default: "64 128")
# Reads: OUT/sS-A.json (each audit's summary), OUT/sS-A.err (/usr/bin/time -v), OUT/sweep/split.json.
set -u
OUT=${1:?give an output directory}; SIZES=${2:-"64 128"}
OBF=${OBFAUDIT:-.venv/bin/obfaudit}
mkdir -p "$OUT"
export OBFAUDIT_NO_PROGRESS=1
for S in $SIZES; do
  [ -d "$OUT/proxy$S" ] || $OBF data export shapes --split train --seed 7 --n 2000 --size "$S" --out "$OUT/proxy$S" > /dev/null
  for A in background random; do
    /usr/bin/time -v $OBF audit --transform identity --data shapes --size "$S" --attribute "$A" \
      --proxy "$OUT/proxy$S" --out "$OUT/s$S-$A" --cache "$OUT/cache" --json > "$OUT/s$S-$A.json" 2> "$OUT/s$S-$A.err"
  done
done
/usr/bin/time -v $OBF audit --transform torchvision.models:resnet18 --split layer1,layer2,layer3,layer4 \
  --data shapes --size 64 --attribute background --out "$OUT/sweep" --cache "$OUT/sweep-cache" --json \
  > "$OUT/sweep.json" 2> "$OUT/sweep.err"
grep -H -E "Elapsed|Maximum resident" "$OUT"/*.err
