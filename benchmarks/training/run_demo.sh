#!/usr/bin/env bash
# Make the bundled demo model: simulate 8 training stacks + 1 held-out stack, train an RGB
# width-32 MFPINet with mfpi-train's defaults on CPU under a wall-clock budget, evaluate it on the
# held-out stack. Run from the repository root with the package installed. DATA, OUT and MINUTES
# may be overridden. (--focus middle: the simulator puts the focal plane in the middle.)
set -euo pipefail
DATA=${DATA:-/tmp/mfpi-data/sim}
OUT=${OUT:-runs/demo}
MINUTES=${MINUTES:-40}
mkdir -p "$DATA"
for s in 0 1 2 3 4 5 6 7; do
  [ -f "$DATA/train_$s.ome.tif" ] || python -m mfpi_deploy.cli.synth "$DATA/train_$s.ome.tif" --size 1024 --seed "$s"
done
[ -f "$DATA/heldout_1000.ome.tif" ] || python -m mfpi_deploy.cli.synth "$DATA/heldout_1000.ome.tif" --size 1024 --seed 1000
ARGS=()
for s in 0 1 2 3 4 5 6 7; do ARGS+=(--data "$DATA/train_$s.ome.tif"); done
rm -rf "$OUT"
echo "started: $(date -u +%FT%TZ), machine $(python -m mfpi_deploy.machine)" > /tmp/demo-conditions.txt
mfpi-train "${ARGS[@]}" --focus middle --width 32 --max-minutes "$MINUTES" --out "$OUT"
echo "finished: $(date -u +%FT%TZ), machine $(python -m mfpi_deploy.machine)" >> /tmp/demo-conditions.txt
mfpi-eval "$OUT/best" --data "$DATA/heldout_1000.ome.tif" --focus middle --out benchmarks/training/demo
mv /tmp/demo-conditions.txt benchmarks/training/demo/conditions.txt
cp "$OUT/config.json" benchmarks/training/demo/train_config.json
cp "$OUT/log.jsonl" benchmarks/training/demo/train_log.jsonl
