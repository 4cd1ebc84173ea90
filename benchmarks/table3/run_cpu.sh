#!/bin/sh
# The CPU rows recorded in results/ (see README.md), exactly as they were run. Works from
# anywhere (it changes to the repository root). 1 thread, so the runs disturb a shared
# machine as little as possible. `python -m mfpi_deploy.cli.bench` = the `mfpi-bench` command.
set -e
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
NOTE=${BENCH_NOTE:-"shared 2-core machine: 3-5 other CPU-heavy processes (model training, other helpers' tests and benchmarks) ran throughout"}

# The paper's size: 384 -> 768 input tile, 11 planes (Deep-Z stacks take minutes each on one core;
# about 40 minutes in all here).
$PY -m mfpi_deploy.cli.bench --backend ort-cpu --backend torch --threads 1 --runs 3 --warmup 1 --pipeline \
    --note "$NOTE" \
    --json benchmarks/table3/results/cpu-384.json \
    --markdown benchmarks/table3/results/cpu-384.md \
    --chart benchmarks/table3/results/cpu-384.png

# Quick: 128 -> 256 tile, 3 rounds (about 4 minutes).
$PY -m mfpi_deploy.cli.bench --quick --backend ort-cpu --backend torch --threads 1 --pipeline \
    --note "$NOTE" \
    --json benchmarks/table3/results/cpu-quick.json \
    --markdown benchmarks/table3/results/cpu-quick.md \
    --chart benchmarks/table3/results/cpu-quick.png
