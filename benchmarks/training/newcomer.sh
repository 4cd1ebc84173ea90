#!/usr/bin/env bash
# The newcomer's commands on one real stack: train on the left three quarters with every option
# at its default except the width and a time budget, then evaluate on the right quarter.
#   benchmarks/training/newcomer.sh STACK NAME [MINUTES] [extra mfpi-train options...]
# Writes runs/newcomer/NAME (the run) and benchmarks/training/real/NAME (table, metrics, plot,
# config, log). Run from the repository root with the package installed (.venv/bin on PATH).
set -euo pipefail
STACK=$1; NAME=$2; MINUTES=${3:-15}; shift 3 || shift $#
RUN=${RUNS:-runs/newcomer}/$NAME
RESULT=${RESULTS:-benchmarks/training/real}/$NAME
rm -rf "$RUN"
mkdir -p "$RESULT"
{ echo "started: $(date -u +%FT%TZ)"
  echo "machine at start: $(python -m mfpi_deploy.machine)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "command: mfpi-train --data $STACK --region 0:1.0,0:0.75 --width 32 --max-minutes $MINUTES --out $RUN $*"; } > "$RESULT/conditions.txt"
mfpi-train --data "$STACK" --region 0:1.0,0:0.75 --width 32 --max-minutes "$MINUTES" --out "$RUN" "$@" \
  | tee "$RESULT/train.txt"
mfpi-eval "$RUN/best" --data "$STACK" --region 0:1.0,0.75:1.0 --out "$RESULT"
{ echo "finished: $(date -u +%FT%TZ)"; echo "machine at end: $(python -m mfpi_deploy.machine)"; } >> "$RESULT/conditions.txt"
cp "$RUN/config.json" "$RESULT/train_config.json"
cp "$RUN/log.jsonl" "$RESULT/train_log.jsonl"
