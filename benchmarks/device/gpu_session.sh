#!/bin/sh
# The checks only a GPU can make, as one prepared run for a lent GPU machine whose image has PyTorch
# with CUDA but no TensorRT, onnxruntime-gpu or pycuda, and no network (see README, "GPU checks").
#
#   benchmarks/device/gpu_session.sh fetch   # here: the wheels that image lacks -> .device-wheels/
#   benchmarks/device/gpu_session.sh run     # there, with OUT set: results under $OUT (at most 8 files)
#
# `run` does, each step time-boxed and logged (steps that cannot run say why, the others go on):
#   1. the machine: GPU, driver, PyTorch, CPU;
#   2. the gpu-marked tests (torch on the GPU against the CPU; TensorRT, onnxruntime-gpu and
#      nvImageCodec tests skip with their reasons on that image);
#   3. Table III's PyTorch-CUDA rows at the paper's size (MFPINet against Deep-Z per plane),
#      with the engine inside the mfpi-run pipeline too (--pipeline);
#   4. the output path fed by a GPU engine: a 4096x4096 sample through mfpi-run on torch-CUDA,
#      end to end against the bare engine, beside the null-engine host path (benchmarks/run/host.py);
#   5. mfpi-serve on torch-CUDA: the scripted viewer session on the same sample
#      (benchmarks/serve/session.py: first viewport, focus steps, pan, whole session).
# QUICK=1 makes every step small (for trying the script on a CPU machine; figures not comparable).
set -u
cd "$(dirname "$0")/../.."
WHEELS=.device-wheels
# what the image lacks of install_requires and of the serve extra (tifffile: a version that reads
# through zarr 3), pinned to the versions CI runs, as Python 3.12 wheels
PACKAGES="imagecodecs==2026.3.6 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0 tifffile==2026.3.3
starlette==1.10.0 uvicorn==0.55.0"

if [ "${1:-}" = fetch ]; then
    mkdir -p "$WHEELS"
    exec python3 -m pip download --only-binary=:all: --no-deps --python-version 3.12 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WHEELS" $PACKAGES
fi
if [ "${1:-}" != run ]; then
    echo "usage: $0 fetch|run" >&2
    exit 2
fi

OUT=${OUT:?set OUT to the folder the results go to}
PY=${PYTHON:-python3}
LOG="$OUT/session.log"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MFPI_CACHE_DIR="${MFPI_CACHE_DIR:-/tmp/mfpi-cache}"
if [ "${QUICK:-0}" = 1 ]; then
    BENCH="--quick --runs 3 --warmup 1"
    SIZE=1024
else
    BENCH="--runs 20 --warmup 5"
    SIZE=4096
fi

step() {  # step NAME SECONDS COMMAND...: run it, log its output and its exit status
    name=$1 seconds=$2
    shift 2
    echo "=== $name: $*" >>"$LOG"
    start=$(date +%s)
    timeout "$seconds" "$@" >>"$LOG" 2>&1
    rc=$?
    echo "=== $name: exit $rc after $(($(date +%s) - start)) s" >>"$LOG"
}

step machine 60 sh -c "nvidia-smi; $PY -c 'import sys, torch; print(sys.version); print(torch.__version__, torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))'; lscpu | grep -E 'Model name|^CPU\(s\)'"
if [ -d "$WHEELS" ]; then  # always the same versions as CI (a package the image has is replaced)
    step wheels 120 $PY -m pip install --no-index --no-deps --find-links "$WHEELS" $PACKAGES
fi
step gpu-tests 240 $PY -m pytest -q -p no:cacheprovider -m gpu \
    tests/mfpi_deploy/run/test_torch_gpu.py tests/mfpi_deploy/backends/test_trt_backend.py \
    tests/mfpi_deploy/backends/test_ort_cuda.py tests/mfpi_deploy/output/test_gpu_jpeg.py
step table3 240 $PY -m mfpi_deploy.cli.bench --backend torch $BENCH --pipeline \
    --note "lent GPU machine, benchmarks/device/gpu_session.sh" \
    --json "$OUT/table3-torch-cuda.json" --markdown "$OUT/table3-torch-cuda.md"
step output-path 300 $PY benchmarks/run/host.py --sizes $SIZE --cases ome-tif:default --null-engine torch \
    --real --real-sizes $SIZE --real-engines torch --work /tmp/mfpi-host --out "$OUT/host-$SIZE-torch-cuda"
step serve 300 $PY benchmarks/serve/session.py "/tmp/mfpi-host/sample-$SIZE.tif" --backend torch \
    --results "$OUT" --out "serve-$SIZE-torch-cuda"
grep '^=== .*exit' "$LOG"
