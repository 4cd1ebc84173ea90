"""Open a backend by kind and precision for an engine folder or a checkpoint; `auto` picks the fastest.

`unavailable_reason` is the one availability probe (commands and mfpi-bench use it), and
`open_backend` the one way to open an engine: it checks the folder's files, the accuracy gate
of the variant on that runtime, and runs one smallest tile to check that the graph gives what
the manifest says. On a GPU `auto` takes TensorRT, then onnxruntime CUDA, then the folder's
checkpoint in PyTorch on the GPU; on a CPU it measures the folder's CPU engines that passed their
gates (probe.py) and takes the fastest.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from mfpi_deploy.backends.base import Backend, BackendKind
from mfpi_deploy.backends.probe import (
    PROBE_TILE,
    PROBE_TILES,
    Candidate,
    ProbeCache,
    describe_timings,
    engine_key,
    fastest,
    time_candidates,
)
from mfpi_deploy.backends.sweep import PlaneSweep
from mfpi_deploy.engine.identity import identify
from mfpi_deploy.engine.manifest import ENGINE_NAME, EngineFolder, Manifest, is_engine_folder
from mfpi_deploy.engine.precision import ONNXRUNTIME, OPENVINO, Precision, artifact_key
from mfpi_deploy.errors import MfpiError

Log = Callable[[str], None]
GPU_ORDER = (BackendKind.TRT, BackendKind.ORT_CUDA)
# The CPU engines auto measures, in the order expected fastest first (benchmarks/table3/README.md,
# CPU precisions); the order only breaks ties and names the candidates.
CPU_CANDIDATES = (
    Candidate(BackendKind.OPENVINO, Precision.INT8),
    Candidate(BackendKind.OPENVINO, Precision.BF16),
    Candidate(BackendKind.ORT_CPU, Precision.INT8),
    Candidate(BackendKind.OPENVINO, Precision.FP32),
    Candidate(BackendKind.ORT_CPU, Precision.FP32),
)
TORCH_GPU = Candidate(BackendKind.TORCH, Precision.FP32)  # auto's GPU fallback (on a CPU, torch is the slowest)
AUTO_ORDER = (*GPU_ORDER, BackendKind.OPENVINO, BackendKind.ORT_CPU)  # kinds auto measures on a CPU
KIND_PRECISIONS: dict[BackendKind, tuple[Precision, ...]] = {
    BackendKind.TRT: (Precision.FP16, Precision.FP32),
    BackendKind.ORT_CUDA: (Precision.FP32, Precision.FP16),
    BackendKind.ORT_CPU: (Precision.FP32, Precision.FP16, Precision.INT8),
    BackendKind.OPENVINO: (Precision.FP32, Precision.BF16, Precision.INT8),
    BackendKind.TORCH: (Precision.FP32,),
}
RUNTIMES = {BackendKind.ORT_CPU: ONNXRUNTIME, BackendKind.ORT_CUDA: ONNXRUNTIME, BackendKind.OPENVINO: OPENVINO}


def _missing(*modules: str) -> str | None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    return None


def runtime_missing(kind: BackendKind) -> str | None:
    """Why this machine cannot run `kind` at all (a runtime or device is missing), or None."""
    if kind is BackendKind.TORCH:
        return None
    if kind is BackendKind.TRT:
        missing = _missing("tensorrt", "pycuda")
        return f"{missing} (pip install '.[trt]')" if missing else None
    if kind is BackendKind.OPENVINO:
        missing = _missing("openvino")
        return f"{missing} (pip install '.[openvino]')" if missing else None
    missing = _missing("onnxruntime")
    if missing or kind is BackendKind.ORT_CPU:
        return missing
    from mfpi_deploy.backends.ort_backend import CUDA_EP, available_providers

    if CUDA_EP not in available_providers():
        return "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu on an NVIDIA machine)"
    return None


def torch_gpu_missing(source: str | Path) -> str | None:
    """Why `auto` cannot run `source` in PyTorch on a GPU (no CUDA GPU, no checkpoint), or None."""
    import torch

    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA GPU"
    if is_engine_folder(source) and not EngineFolder(source).has("weights"):
        return "the folder has no checkpoint weights (exported before they were kept)"
    return None


def default_precision(kind: BackendKind, manifest: Manifest) -> Precision:
    """What `kind` runs when no precision is asked for: the TensorRT engine's; fp16 on onnxruntime
    CUDA when the folder has it (float16 is slow on CPUs); fp32 otherwise."""
    if kind is BackendKind.TRT and "engine" in manifest.artifacts:
        return Precision.parse(manifest.artifacts["engine"].precision)
    if kind is BackendKind.ORT_CUDA and artifact_key(Precision.FP16) in manifest.artifacts:
        return Precision.FP16
    return Precision.FP32


def unavailable_reason(
    kind: BackendKind, source: str | Path | None = None, precision: Precision | str | None = None
) -> str | None:
    """Why `kind` cannot run `source` (in `precision`, default: the kind's) here (None: it can). Cheap checks only.

    Without a source, only the runtime is checked (what mfpi-bench needs before exporting).
    """
    reason = runtime_missing(kind)
    if reason or source is None:
        return reason
    wanted = None if precision is None else Precision.parse(precision)
    if wanted is not None and wanted not in KIND_PRECISIONS[kind]:
        return f"{kind.value} runs {', '.join(p.value for p in KIND_PRECISIONS[kind])}, not {wanted.value}"
    if kind is BackendKind.TORCH:
        return None
    folder = Path(source)
    if not is_engine_folder(folder):
        return f"{folder} is not an engine folder (no manifest.json; export it with mfpi-export)"
    manifest = EngineFolder(folder).manifest
    if kind is BackendKind.TRT:
        if "engine" not in manifest.artifacts:
            return f"no {ENGINE_NAME} in folder (export with --trt)"
        built = manifest.artifacts["engine"].precision
        if wanted is not None and wanted.value != built:
            return f"the folder's TensorRT engine is {built}, not {wanted.value}"
        from mfpi_deploy.engine.cuda import engine_mismatch

        return engine_mismatch(folder)
    wanted = wanted or default_precision(kind, manifest)
    if artifact_key(wanted) not in manifest.artifacts:
        return (
            "no ONNX graph in folder"
            if wanted is Precision.FP32
            else f"no {wanted.value} variant in folder (export with --{wanted.value})"
        )
    gate = manifest.gate_reason(wanted.value, RUNTIMES[kind])
    if gate:
        return gate
    if kind is BackendKind.OPENVINO and wanted is Precision.BF16:
        from mfpi_deploy.backends.openvino_backend import no_bf16_reason

        return no_bf16_reason()
    return None


def _skipped_lines(skipped: list[tuple[Candidate, str]], considered: list[Candidate]) -> list[str]:
    """'kind: reason' once for a kind all of whose considered candidates were skipped for one reason,
    else 'kind precision: reason' per candidate."""
    lines: list[str] = []
    for kind in dict.fromkeys(c.kind for c, _ in skipped):
        reasons = [(c, r) for c, r in skipped if c.kind is kind]
        if len({r for _, r in reasons}) == 1 and len(reasons) == sum(c.kind is kind for c in considered):
            lines.append(f"{kind.value}: {reasons[0][1]}")
        else:
            lines += [f"{c.name}: {r}" for c, r in reasons]
    return lines


def choose_backend(
    source: str | Path,
    precision: Precision | str | None = None,
    *,
    threads: int | None = None,
    measure: bool = True,
    cache: ProbeCache | None = None,
    timer: Callable[..., dict[Candidate, float]] | None = None,
) -> tuple[Candidate, list[str], str]:
    """What `auto` runs: (the candidate, the reasons others were skipped, how it was chosen).

    GPU backends first, in GPU_ORDER, then the checkpoint in PyTorch on a GPU (fp32; a lab with a
    GPU but neither TensorRT nor onnxruntime-gpu). On a CPU, the folder's engines that can run here and
    passed their gates (CPU_CANDIDATES, or those of `precision`) are timed on a loop of probe tiles
    (cached per machine and engine, see probe.py) and the fastest is taken; `measure=False`
    takes the first in CPU_CANDIDATES instead.
    """
    wanted = None if precision is None else Precision.parse(precision)
    skipped: list[tuple[Candidate, str]] = []
    manifest = EngineFolder(source).manifest if is_engine_folder(source) else None
    gpu = [
        Candidate(kind, wanted or (default_precision(kind, manifest) if manifest else Precision.FP32))
        for kind in GPU_ORDER
    ]
    cpu = [c for c in CPU_CANDIDATES if wanted is None or c.precision is wanted]
    torch_gpu = [TORCH_GPU] if wanted in (None, Precision.FP32) else []
    considered = gpu + torch_gpu + cpu
    for cand in gpu:
        reason = unavailable_reason(cand.kind, source, cand.precision)
        if reason is None:
            return cand, _skipped_lines(skipped, considered), ""
        skipped.append((cand, reason))
    for cand in torch_gpu:
        reason = torch_gpu_missing(source)
        if reason is None:
            return cand, _skipped_lines(skipped, considered), "the checkpoint in PyTorch on the GPU"
        skipped.append((cand, reason))
    usable: list[Candidate] = []
    for cand in cpu:
        reason = unavailable_reason(cand.kind, source, cand.precision)
        if reason is None:
            usable.append(cand)
        else:
            skipped.append((cand, reason))
    if not usable:
        raise MfpiError(
            f"no backend can run {source}"
            + (f" in {wanted.value}" if wanted else "")
            + ": "
            + "; ".join(_skipped_lines(skipped, considered))
        )
    if len(usable) == 1 or not measure:
        how = "the only CPU engine here that passed its gate" if len(usable) == 1 else "first in the documented order"
        return usable[0], _skipped_lines(skipped, considered), how
    cache = cache or ProbeCache()
    key = engine_key(source, threads)
    timings = cache.get(key, usable)
    cached = timings is not None
    if timings is None:
        timings, failed = _measure(source, usable, threads, timer or time_candidates)
        skipped += failed
        if not timings:
            raise MfpiError(f"no backend can run {source}: " + "; ".join(_skipped_lines(skipped, considered)))
        if not failed:
            cache.put(key, timings)
    best = fastest(timings, CPU_CANDIDATES)
    how = (
        f"fastest of {len(timings)} CPU engines on {PROBE_TILES} {PROBE_TILE}px probe tiles"
        f"{' (measured earlier on this machine)' if cached else ''}: {describe_timings(timings)}"
    )
    return best, _skipped_lines(skipped, considered), how


Skipped = list[tuple[Candidate, str]]


def _measure(
    source: str | Path, usable: list[Candidate], threads: int | None, timer: Callable[..., dict[Candidate, float]]
) -> tuple[dict[Candidate, float], Skipped]:
    """Open every candidate, time them together, close them; a candidate that fails to open is skipped."""
    opened: dict[Candidate, Backend] = {}
    failed: list[tuple[Candidate, str]] = []
    try:
        for cand in usable:
            try:
                opened[cand] = _open(cand.kind, Path(source), threads=threads, precision=cand.precision, device=None)
            except MfpiError as exc:
                failed.append((cand, str(exc)))
        return (timer(opened) if opened else {}), failed
    finally:
        for backend in opened.values():
            backend.close()


def _precision_arg(precision: Precision | str | None, fp16: bool | None) -> Precision | None:
    """The precision asked for; `fp16` is the older spelling (True: fp16, False: fp32)."""
    wanted = None if precision is None else Precision.parse(precision)
    if fp16 is None:
        return wanted
    legacy = Precision.FP16 if fp16 else Precision.FP32
    if wanted is not None and wanted is not legacy:
        raise MfpiError(f"fp16={fp16} contradicts precision {wanted.value}")
    return legacy


def open_backend(
    kind: BackendKind | str,
    source: str | Path,
    *,
    threads: int | None = None,
    log: Log = print,
    fp16: bool | None = None,
    device: str | None = None,
    precision: Precision | str | None = None,
    measure: bool = True,
    per_plane: bool = False,
    streams: int | None = None,
) -> Backend:
    """Load `source` (an exported engine folder, or a checkpoint for `torch`) on backend `kind`.

    `auto` takes TensorRT or onnxruntime CUDA when they can run the folder; on a CPU it
    takes the fastest engine that passed its accuracy gate (measured, see choose_backend),
    and logs what it took and why. `precision` (fp32, fp16, bf16, int8) forces a variant;
    without it a named backend runs its default (default_precision). `threads` sets CPU
    threads (ort-cpu, openvino, torch). `device` is torch's (default: a CUDA GPU when PyTorch
    sees one, else the CPU). A Deep-Z engine
    comes as a stack engine (one pass per plane, see PlaneSweep) unless `per_plane` asks for
    the raw one-plane engine with its DPM input (mfpi-bench times the passes itself). `streams`
    is OpenVINO's (None: one per batch in flight, a tile loop's throughput; 1: the lowest latency
    of one batch, what mfpi-bench reports).
    """
    kind = BackendKind.parse(kind)
    if is_engine_folder(source):  # every file as exported, whichever one this backend runs
        EngineFolder(source).verify_all()
    wanted = _precision_arg(precision, fp16)
    if kind is BackendKind.AUTO:
        if not is_engine_folder(source):
            if wanted not in (None, Precision.FP32):
                raise MfpiError(
                    f"{source} is a checkpoint: it runs on torch in fp32; export it with "
                    f"mfpi-export --{wanted.value} for {wanted.value}"
                )
            log(f"backend: torch ({source} is a checkpoint, not an engine folder)")
            kind, wanted = BackendKind.TORCH, Precision.FP32
        else:
            cand, skipped, how = choose_backend(source, wanted, threads=threads, measure=measure)
            notes = "; ".join(([how] if how else []) + ([f"skipped {'; '.join(skipped)}"] if skipped else []))
            log(f"backend: {cand.name}" + (f" ({notes})" if notes else ""))
            kind, wanted = cand.kind, cand.precision
    else:
        reason = unavailable_reason(kind, source, wanted)
        if reason is not None:
            raise MfpiError(
                f"backend {kind.value} cannot run {source}" + (f" in {wanted.value}" if wanted else "") + f": {reason}"
            )
    if streams is not None and kind is not BackendKind.OPENVINO:
        log(f"streams: {kind.value} has none (OpenVINO's option), so {streams} is not used")
    backend = _open(kind, Path(source), threads=threads, precision=wanted, device=device, streams=streams)
    try:
        backend.check_graph()
    except BaseException:
        backend.close()
        raise
    backend.identity = identify(source)
    if per_plane or not backend.spec.needs_dpm:
        return backend
    sweep = PlaneSweep(backend)
    sweep.identity = backend.identity
    return sweep


def _open(
    kind: BackendKind,
    source: Path,
    *,
    threads: int | None,
    precision: Precision | None,
    device: str | None,
    streams: int | None = None,
) -> Backend:
    if kind is BackendKind.TORCH:
        from mfpi_deploy.backends.torch_backend import TorchBackend
        from mfpi_deploy.checkpoint.io import load_checkpoint

        if not is_engine_folder(source):
            return TorchBackend(load_checkpoint(source), threads=threads, device=device)
        folder = EngineFolder(source)
        if folder.has("weights"):  # exports before manifest v2 did not hash the weights
            folder.artifact("weights")
        # same spec (tile/batch hints) as the folder's other backends
        return TorchBackend(
            load_checkpoint(source), threads=threads, device=device, spec=folder.spec("onnx", limited=False)
        )
    if kind is BackendKind.TRT:
        from mfpi_deploy.backends.trt_backend import TrtBackend

        return TrtBackend(source)
    if precision is None:
        precision = default_precision(kind, EngineFolder(source).manifest)
    if kind is BackendKind.OPENVINO:
        from mfpi_deploy.backends.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(source, precision=precision, threads=threads, streams=streams)
    from mfpi_deploy.backends.ort_backend import OrtBackend

    return OrtBackend(source, kind=kind, threads=threads, precision=precision)
