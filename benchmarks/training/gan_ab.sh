#!/usr/bin/env bash
# Does the adversarial phase earn its place? Equal steps for both arms on every real stack, several seeds.
#   [NAMES="smear isl cell"] [ONLY_ARMS="l1 gan"] benchmarks/training/gan_ab.sh [STEPS] [SEEDS...]   (default: 400 steps, seeds 0 1)
# Arms: l1  = L1 only (--adv-weight 0);
#       gan = the paper's recipe: L1, then L1 + 0.01 x adversarial BCE from half the run, discriminator
#             at the paper's width 64.
# Both: width 32, the same planned steps (--epochs 1 --steps-per-epoch STEPS: a load-independent plan),
# train on the left 3/4, mfpi-eval on the right 1/4. Writes benchmarks/training/gan_ab/STACK/ARM/seedN
# (metrics.json as mfpi-eval writes it, conditions.txt); summarise with gan_ab_summary.py.
# Run from the repository root with the package installed (.venv/bin on PATH).
set -euo pipefail
STEPS=${1:-400}; shift || true
SEEDS=${*:-0 1}
OUT=${RESULTS:-benchmarks/training/gan_ab}
RUNS=${RUNS:-runs/gan_ab}
declare -A STACKS=(
  [smear]=benchmarks/data/real/sharpness_smear_brightfield_19z.tif
  [isl]=../shared/data/real/isl_kevan_0_8_A4_phasecontrast_13z.tif
  [cell]=benchmarks/data/real/bfdc_cell_brightfield_21z.ome.tif
)
declare -A ARMS=([l1]="--adv-weight 0" [gan]="--adv-weight 0.01 --adv-start 0.5 --disc-width 64")
for seed in $SEEDS; do
  for name in ${NAMES:-smear isl cell}; do
    stack=${STACKS[$name]}
    [ -e "$stack" ] || { echo "skip $name: $stack absent"; continue; }
    for arm in ${ONLY_ARMS:-l1 gan}; do
      run=$RUNS/$name/$arm/seed$seed; res=$OUT/$name/$arm/seed$seed
      rm -rf "$run"; mkdir -p "$res"
      { echo "started: $(date -u +%FT%TZ)"; echo "machine at start: $(python -m mfpi_deploy.machine)"
        echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"; } > "$res/conditions.txt"
      # shellcheck disable=SC2086
      mfpi-train --data "$stack" --region 0:1.0,0:0.75 --width 32 --epochs 1 --steps-per-epoch "$STEPS" \
        --seed "$seed" ${ARMS[$arm]} --out "$run" > "$res/train.txt" 2>&1
      mfpi-eval "$run/best" --data "$stack" --region 0:1.0,0.75:1.0 --out "$res" > "$res/eval.txt" 2>&1
      { echo "finished: $(date -u +%FT%TZ)"; echo "machine at end: $(python -m mfpi_deploy.machine)"; } >> "$res/conditions.txt"
      cp "$run/log.jsonl" "$res/train_log.jsonl"
    done
  done
done
