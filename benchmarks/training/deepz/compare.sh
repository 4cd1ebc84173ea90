#!/usr/bin/env bash
# Table II on a lab's own stack: MFPINet and the Deep-Z baseline, each trained with the same
# wall-clock budget on the left three quarters of STACK (both at once, one torch thread each, so
# each has one core of a 2-core machine), then evaluated side by side on the right quarter.
#   benchmarks/training/deepz/compare.sh STACK [MINUTES]
# Writes runs/compare/{mfpinet,deepz} and benchmarks/training/deepz/results (table, metrics, plot,
# each run's config and log, conditions). Run from the repository root with .venv/bin on PATH.
set -euo pipefail
STACK=$1; MINUTES=${2:-15}
RUNS=${RUNS:-runs/compare}
RESULT=${RESULTS:-benchmarks/training/deepz/results}
rm -rf "$RUNS"
mkdir -p "$RESULT"
{ echo "started: $(date -u +%FT%TZ), machine $(python -m mfpi_deploy.machine)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"; } > "$RESULT/conditions.txt"
common=(--data "$STACK" --region 0:1.0,0:0.75 --max-minutes "$MINUTES")
mfpi-train "${common[@]}" --out "$RUNS/mfpinet" > "$RUNS.mfpinet.log" 2>&1 &
mfpi-train "${common[@]}" --arch deepz --out "$RUNS/deepz" > "$RUNS.deepz.log" 2>&1 &
wait
echo "trained: $(date -u +%FT%TZ), machine $(python -m mfpi_deploy.machine)" >> "$RESULT/conditions.txt"
mfpi-eval "$RUNS/mfpinet/best" "$RUNS/deepz/best" --data "$STACK" --region 0:1.0,0.75:1.0 --threads 2 --out "$RESULT"
echo "finished: $(date -u +%FT%TZ), machine $(python -m mfpi_deploy.machine)" >> "$RESULT/conditions.txt"
for arch in mfpinet deepz; do
  cp "$RUNS/$arch/config.json" "$RESULT/train_config_$arch.json"
  cp "$RUNS/$arch/log.jsonl" "$RESULT/train_log_$arch.jsonl"
  tail -n 3 "$RUNS.$arch.log" > "$RESULT/train_tail_$arch.txt"
done
