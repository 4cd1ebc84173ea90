#!/bin/sh
# The CPU rows recorded in results/ (see README.md). Run from anywhere; it works from the
# repository root. 1 thread each, so the runs disturb a shared machine as little as possible.
# Until `mfpi-bench` is installed as a console script, `python -m mfpi_deploy.cli.bench` is the same.
set -e
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
NOTE=${BENCH_NOTE:-}

# Quick: 128 -> 256 tile, 3 rounds (about 5 minutes with ort-cpu and torch on one core).
$PY -m mfpi_deploy.cli.bench --quick --threads 1 --pipeline ${NOTE:+--note "$NOTE"} \
    --json benchmarks/table3/results/cpu-quick.json \
    --markdown benchmarks/table3/results/cpu-quick.md \
    --chart benchmarks/table3/results/cpu-quick.png

# The paper's size: 384 -> 768, 11 planes; Deep-Z stacks take minutes each on one core.
$PY -m mfpi_deploy.cli.bench --threads 1 --runs 3 --warmup 1 --pipeline ${NOTE:+--note "$NOTE"} \
    --json benchmarks/table3/results/cpu-384.json \
    --markdown benchmarks/table3/results/cpu-384.md \
    --chart benchmarks/table3/results/cpu-384.png
