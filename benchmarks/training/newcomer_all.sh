#!/usr/bin/env bash
# The newcomer's commands (newcomer.sh) on every real stack, three seeds each, JOBS at a time:
#   benchmarks/training/newcomer_all.sh [MINUTES] [JOBS]     (default 15 minutes, 2 at a time)
# Writes benchmarks/training/real/STACK/seedN (metrics.json as mfpi-eval writes it, table, plot,
# conditions, train log); then `python benchmarks/training/summarize.py --seeds` tabulates them.
set -euo pipefail
MINUTES=${1:-15}; JOBS=${2:-2}
cd "$(dirname "$0")/../.."
{
  for seed in 0 1 2; do
    for stack in benchmarks/data/real/sharpness_smear_brightfield_19z.tif:smear \
                 ../shared/data/real/isl_kevan_0_8_A4_phasecontrast_13z.tif:isl \
                 benchmarks/data/real/bfdc_cell_brightfield_21z.ome.tif:cell; do
      path=${stack%%:*}; name=${stack##*:}
      [ -e "$path" ] && echo "$path $name/seed$seed $seed"
    done
  done
} | xargs -P "$JOBS" -L 1 bash -c 'benchmarks/training/newcomer.sh "$0" "$1" '"$MINUTES"' --seed "$2" > /dev/null 2>&1 \
      && echo "done: $1" || echo "FAILED: $1"'
