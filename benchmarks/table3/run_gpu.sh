#!/bin/sh
# The GPU rows: TensorRT, onnxruntime CUDA and torch (CUDA) at the paper's size, in one command.
# Needs `pip install -e '.[gpu,trt]'` (drop `--backend trt` without TensorRT). Engines are
# exported once into engines/bench/ and reused by later runs. Add --fp16 for FP16 engines.
set -e
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
$PY -m mfpi_deploy.cli.bench --backend trt --backend ort-cuda --backend torch --runs 20 --warmup 5 \
    --pipeline --engines-dir engines/bench "$@" \
    --json benchmarks/table3/results/gpu.json \
    --markdown benchmarks/table3/results/gpu.md \
    --chart benchmarks/table3/results/gpu.png
