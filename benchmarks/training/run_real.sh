#!/usr/bin/env bash
# Train the grey real-data model (left three quarters of the shared 13-plane stack) within a
# ~30 min CPU budget, then evaluate on the right quarter. Run from the repository root.
set -euo pipefail
DATA=${DATA:-../shared/data/real/isl_kevan_0_8_A4_phasecontrast_13z.tif}
OUT=${OUT:-runs/real}
python -m training.cli train --data "$DATA" --region 0:1024,0:768 --focus middle --planes 11 \
  --width 32 --disc-width 16 --patch 128 --batch 4 --epochs 5 --steps-per-epoch 500 --warmup-epochs 3 --lr 5e-4 \
  --block 256 --val-fraction 0.17 --val-patches 32 --seed 0 --threads 1 --max-minutes 30 --out "$OUT"
python -m training.cli eval "$OUT/best" --data "$DATA" --region 0:1024,768:1024 --focus middle --planes 11 \
  --out benchmarks/training/real
