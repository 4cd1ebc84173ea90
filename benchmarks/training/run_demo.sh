#!/usr/bin/env bash
# Make the bundled demo model: simulate 8 training stacks + 1 held-out stack, train an RGB
# width-32 MFPINet on CPU under a wall-clock budget, evaluate it on the held-out stack.
# Run from the repository root. DATA and OUT may be overridden.
set -euo pipefail
DATA=${DATA:-/tmp/mfpi-data/sim}
OUT=${OUT:-runs/demo}
MINUTES=${MINUTES:-45}
mkdir -p "$DATA"
for s in 0 1 2 3 4 5 6 7; do
  [ -f "$DATA/train_$s.ome.tif" ] || python -m mfpi_deploy.cli.synth "$DATA/train_$s.ome.tif" --size 1024 --seed "$s"
done
[ -f "$DATA/heldout_1000.ome.tif" ] || python -m mfpi_deploy.cli.synth "$DATA/heldout_1000.ome.tif" --size 1024 --seed 1000
ARGS=()
for s in 0 1 2 3 4 5 6 7; do ARGS+=(--data "$DATA/train_$s.ome.tif"); done
python -m training.cli train "${ARGS[@]}" --focus middle --planes 11 --width 32 --disc-width 16 --patch 128 \
  --batch 4 --epochs 8 --steps-per-epoch 500 --warmup-epochs 4 --lr 5e-4 --block 256 --val-fraction 0.1 --val-patches 32 \
  --seed 0 --threads 1 --max-minutes "$MINUTES" --out "$OUT"
python -m training.cli eval "$OUT/best" --data "$DATA/heldout_1000.ome.tif" --focus middle --out benchmarks/training/demo
