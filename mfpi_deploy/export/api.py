"""Public API of the export: export_model, cached_default_engine, rebuild_engine.

An engine folder holds manifest.json, model.onnx (fp32, uint8 I/O), optionally
model.fp16.onnx, model.int8.onnx, the bf16 variant (model.onnx with OpenVINO's bf16 hint)
and model.engine + timing.cache, and a copy of the source checkpoint.
Folders are built in a temporary sibling and renamed into place, so a failed export
leaves nothing that looks complete.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mfpi_deploy.backends.torch_backend import torch_threads
from mfpi_deploy.checkpoint import default as default_model
from mfpi_deploy.checkpoint.io import CARD_NAME, WEIGHTS_NAME
from mfpi_deploy.engine.manifest import (
    ENGINE_NAME,
    MANIFEST_NAME,
    ONNX_FP16_NAME,
    ONNX_INT8_NAME,
    ONNX_NAME,
    Artifact,
    EngineFolder,
    Manifest,
)
from mfpi_deploy.engine.precision import OPENVINO, Precision, artifact_key
from mfpi_deploy.engine.profiles import make_profiles, validate_tiles
from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export import accuracy, calibration
from mfpi_deploy.export.default_engine import default_engine_folder, default_with_int8, exported_default_engine
from mfpi_deploy.export.onnx_export import Exporter, check_opset, deployment_module, export_onnx
from mfpi_deploy.export.source import Source, load_source
from mfpi_deploy.export.versions import DEFAULT_OPSET, tool_versions
from mfpi_deploy.fileio import file_sha256, remove_stale_staging, replace_dir, staging_dir

Log = Callable[[str], None]
MAX_PARITY_DIFF = 1  # uint8 levels: fp32 engines may differ from PyTorch by rounding only


@dataclass(frozen=True)
class ExportOptions:
    """What to build. Tiles are square input sides (multiples of the network stride).

    `batches`: batch sizes the TensorRT profiles are tuned for (the largest is the engine's
    maximum). `calibration`: real images (TIFF) for the accuracy gates and INT8 calibration
    (default: the ones shipped in assets/calibration). `int8`, `bf16`: the CPU variants, each
    gated at its `*_min_psnr` (lowest per-plane PSNR against fp32, dB); `int8_optional`: an int8
    variant that fails its gate is left out (said in the log) instead of failing the export.
    """

    fp16: bool = False
    trt: bool = False
    int8: bool = False
    int8_optional: bool = False
    bf16: bool = False
    tiles: tuple[int, ...] = (384,)
    batches: tuple[int, ...] = (1, 4)
    opset: int = DEFAULT_OPSET
    workspace_gb: float = 4.0
    force: bool = False
    exporter: Exporter = Exporter.DYNAMO
    calibration: tuple[Path, ...] = ()
    fp16_min_psnr: float = 45.0
    int8_min_psnr: float = 45.0  # see benchmarks/table3/README.md (CPU precisions) for the measurements behind it
    bf16_min_psnr: float = 45.0
    gate_tile: int = 128  # side of the tiles the accuracy gates run on
    gate_count: int = 4  # real and simulated tiles each
    threads: int | None = None  # CPU threads for the checks (torch and onnxruntime)

    def __post_init__(self) -> None:
        # Accept plain values from Python callers: "torchscript", [384, 512], ["a.tif"].
        object.__setattr__(self, "exporter", Exporter.parse(self.exporter))
        object.__setattr__(self, "tiles", tuple(int(t) for t in self.tiles))
        object.__setattr__(self, "batches", tuple(int(b) for b in self.batches))
        object.__setattr__(self, "calibration", tuple(Path(p) for p in self.calibration))
        if not self.batches or min(self.batches) < 1:
            raise MfpiError(f"batch sizes must be positive, got {self.batches}")
        if self.gate_count < 1 or self.gate_tile < 1:
            raise MfpiError("gate_count and gate_tile must be positive")
        if self.workspace_gb <= 0:
            raise MfpiError(f"workspace must be positive, got {self.workspace_gb} GB")
        for flag, value in (
            ("--min-psnr", self.fp16_min_psnr),
            ("--int8-min-psnr", self.int8_min_psnr),
            ("--bf16-min-psnr", self.bf16_min_psnr),
        ):
            if not math.isfinite(value):  # nan passed every check until the gate compared against it
                raise MfpiError(f"{flag} must be a number of dB, got {value}")


def export_model(
    source: str | Path, out_dir: str | Path, options: ExportOptions = ExportOptions(), *, log: Log = print
) -> Path:
    """Export `source` (checkpoint folder/file, authors' .pth, or "default") into `out_dir`."""
    out_dir = Path(out_dir)
    if not out_dir.name or out_dir.resolve() == Path.cwd() or out_dir.resolve() in Path.cwd().parents:
        raise MfpiError(f"--out {out_dir}: name a new folder for the engine (the current folder is not replaced)")
    if out_dir.exists() or out_dir.is_symlink():
        if not options.force:
            raise MfpiError(f"{out_dir}: exists (pass --force to replace it)")
        if not (out_dir.is_dir() and (out_dir / MANIFEST_NAME).is_file()):
            raise MfpiError(
                f"{out_dir}: not an engine folder (no {MANIFEST_NAME}); --force replaces engine folders only, "
                "so it is kept: move it or choose another --out"
            )
    if options.trt:  # fail before the slow steps, not after them
        from mfpi_deploy.engine.cuda import import_pycuda, import_tensorrt

        import_tensorrt()
        import_pycuda()
    check_opset(options.opset)
    src = load_source(source)
    spec = EngineSpec.from_card(src.checkpoint.card)
    validate_tiles(options.tiles, spec.stride)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_staging(out_dir.parent, prefix=f".{out_dir.name}."):
        log(f"removed {stale.name}, left by an export that was killed")
    tmp = staging_dir(out_dir.parent, prefix=f".{out_dir.name}.")
    try:
        with torch_threads(options.threads):
            _build(src, spec, tmp, options, log)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"wrote {out_dir}")
    return out_dir


def _build(src: Source, spec: EngineSpec, folder: Path, options: ExportOptions, log: Log) -> None:
    src.copy_to(folder)
    log(
        f"exporting {spec.architecture} ({src.kind} {src.path}) to ONNX opset {options.opset} "
        f"with the {options.exporter.value} exporter"
    )
    export_onnx(src.checkpoint.model, spec, folder / ONNX_NAME, opset=options.opset, exporter=options.exporter)
    artifacts = {
        "onnx": Artifact(ONNX_NAME, file_sha256(folder / ONNX_NAME), "fp32", options.opset),
        "weights": Artifact(WEIGHTS_NAME, file_sha256(folder / WEIGHTS_NAME), "fp32"),
        "card": Artifact(CARD_NAME, file_sha256(folder / CARD_NAME), ""),
    }
    side = _gate_side(options, spec)
    images = list(options.calibration) or calibration.default_calibration_images()
    tiles_real, tiles_sim = calibration.calibration_set(spec.channels, side, options.gate_count, images)
    acc: dict[str, object] = {
        "calibration": {
            "real_images": [p.name if calibration.is_shipped(p) else str(p) for p in images],
            "real_tiles": len(tiles_real),
            "simulated_tiles": len(tiles_sim),
            "simulator": "mfpi_deploy.synth",
            "tile_side": side,
        }
    }
    par = check_onnx_parity(src, spec, folder / ONNX_NAME, options, tiles_real)
    acc["onnx_parity"] = par
    log(f"onnx parity vs PyTorch: max |diff| {par['max_abs_diff']}, {par['share_differing']:.2e} of values differ")
    gpu = None
    if options.fp16:
        from mfpi_deploy.export.fp16 import export_fp16

        report = export_fp16(
            folder / ONNX_NAME,
            folder / ONNX_FP16_NAME,
            spec,
            tiles_real,
            tiles_sim,
            min_psnr=options.fp16_min_psnr,
            threads=options.threads,
            log=log,
        )
        artifacts["onnx_fp16"] = Artifact(
            ONNX_FP16_NAME, file_sha256(folder / ONNX_FP16_NAME), "fp16", options.opset, report.fp32_nodes
        )
        acc["fp16"] = report.to_dict()
    if options.int8:
        from mfpi_deploy.export.int8 import export_int8

        calib = calibration.quantization_tiles(
            spec.channels, side, options.gate_count, images, gate_count=options.gate_count
        )
        try:
            int8 = export_int8(
                folder / ONNX_NAME,
                folder / ONNX_INT8_NAME,
                spec,
                tiles_real,
                tiles_sim,
                calib,
                min_psnr=options.int8_min_psnr,
                threads=options.threads,
                log=log,
            )
        except accuracy.GateError as exc:
            if not options.int8_optional:
                raise
            log(f"the int8 variant failed its gate ({exc}); exporting fp32 only")
            (folder / ONNX_INT8_NAME).unlink(missing_ok=True)
        else:
            artifacts[artifact_key(Precision.INT8)] = Artifact(
                ONNX_INT8_NAME, file_sha256(folder / ONNX_INT8_NAME), "int8", options.opset, int8.fp32_nodes
            )
            acc["int8"] = int8.to_dict()
    if options.bf16:
        from mfpi_deploy.export.bf16 import measure_bf16

        bf16 = measure_bf16(
            folder / ONNX_NAME,
            spec,
            tiles_real,
            tiles_sim,
            min_psnr=options.bf16_min_psnr,
            threads=options.threads,
            log=log,
        )
        artifacts[artifact_key(Precision.BF16)] = Artifact(
            ONNX_NAME, artifacts["onnx"].sha256, "bf16", options.opset, hints=dict(bf16.hints)
        )
        acc["bf16"] = bf16.to_dict()
    profiles = make_profiles(options.tiles, options.batches, spec.stride)
    if options.trt:
        from mfpi_deploy.export.trt_build import build_engine

        onnx_for_trt = folder / (ONNX_FP16_NAME if options.fp16 else ONNX_NAME)
        gpu = build_engine(onnx_for_trt, folder, spec, profiles, workspace_gb=options.workspace_gb, log=log)
        artifacts["engine"] = Artifact(
            ENGINE_NAME, file_sha256(folder / ENGINE_NAME), "fp16" if options.fp16 else "fp32", options.opset
        )
    manifest = Manifest(
        engine=dataclasses.replace(spec, profiles=profiles),
        source=src.describe(),
        artifacts=artifacts,
        tools=tool_versions(tensorrt=options.trt, openvino=_measured_on_openvino(acc)),
        accuracy=acc,
        gpu=gpu,
        exporter=options.exporter.value,
        workspace_gb=options.workspace_gb if options.trt else None,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    manifest.write(folder)
    if options.trt:  # the engine against onnxruntime fp32, within the fp16 gate
        acc["engine"] = check_engine(folder, spec, tiles_real, tiles_sim, options)
        log(f"engine vs onnxruntime fp32: lowest plane PSNR {acc['engine']['min_psnr_db']:.1f} dB")
        manifest.write(folder)


def check_engine(
    folder: Path, spec: EngineSpec, real: np.ndarray, simulated: np.ndarray, options: ExportOptions
) -> dict[str, object]:
    """PSNR per plane of the TensorRT engine's output against onnxruntime fp32; fails under the gate."""
    from mfpi_deploy.backends.ort_backend import OrtBackend
    from mfpi_deploy.backends.trt_backend import TrtBackend

    tiles = np.concatenate([t for t in (real, simulated) if len(t)])
    dpm = np.linspace(-2.5, 2.5, len(tiles)).astype(np.float32) if spec.needs_dpm else None
    with OrtBackend(folder, threads=options.threads) as ref_backend, TrtBackend(folder) as engine:
        top = max(p.max_batch or 1 for p in engine.spec.profiles)
        want, got = [], []
        for i in range(0, len(tiles), top):
            d = None if dpm is None else dpm[i : i + top]
            want.append(ref_backend.run(tiles[i : i + top], d))
            got.append(engine.run(tiles[i : i + top], d))
    psnrs = accuracy.psnr_per_plane(np.concatenate(got), np.concatenate(want))
    par = accuracy.parity(np.concatenate(got), np.concatenate(want))
    floor = options.fp16_min_psnr  # also for fp32 engines: TensorRT may use TF32 convolutions
    if min(psnrs) < floor:
        raise MfpiError(
            f"TensorRT engine differs from onnxruntime: lowest plane PSNR {min(psnrs):.1f} dB "
            f"< {floor} dB (planes {psnrs})"
        )
    return {"psnr_db": psnrs, "min_psnr_db": min(psnrs), "threshold_db": floor, "parity": par.to_dict()}


def _measured_on_openvino(acc: dict[str, object]) -> bool:
    """Whether a gate ran OpenVINO (then its version shapes the figures and is recorded)."""
    return any(
        isinstance(block, dict)
        and isinstance(block.get("runtimes"), dict)
        and OPENVINO in block["runtimes"]
        and block["runtimes"][OPENVINO].get("method", "openvino") == "openvino"
        for block in acc.values()
    )


def _gate_side(options: ExportOptions, spec: EngineSpec) -> int:
    side = min(max(options.tiles), options.gate_tile)
    return max(spec.stride, side // spec.stride * spec.stride)


def parity_inputs(
    spec: EngineSpec, side: int, real: np.ndarray, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Batches for the parity check: random tiles of several sizes (one not square) and real tiles."""
    rng = np.random.default_rng(seed)
    s = spec.stride
    batches = []
    for h, w in sorted({(2 * s, 2 * s), (4 * s, 6 * s), (side, side)}):
        batches.append(rng.integers(0, 256, (2, h, w, spec.channels), dtype=np.uint8))
    if len(real):
        batches.append(real[:2])
    return [(b, rng.uniform(-2.5, 2.5, len(b)).astype(np.float32) if spec.needs_dpm else None) for b in batches]


def check_onnx_parity(
    src: Source, spec: EngineSpec, onnx_path: Path, options: ExportOptions, real: np.ndarray
) -> dict[str, object]:
    """Run the ONNX graph with onnxruntime against PyTorch; fail unless they differ by rounding only."""
    import onnxruntime as ort

    from mfpi_deploy.backends.ort_backend import session_options

    sess = ort.InferenceSession(str(onnx_path), session_options(options.threads), providers=["CPUExecutionProvider"])
    module = deployment_module(src.checkpoint.model, spec)
    total: accuracy.Parity | None = None
    sizes = []
    for tiles, dpm in parity_inputs(spec, _gate_side(options, spec), real):
        feeds = {"tiles": tiles} if dpm is None else {"tiles": tiles, "dpm": dpm}
        got = sess.run(None, feeds)[0]
        with torch.inference_mode():
            args = (torch.from_numpy(tiles),) if dpm is None else (torch.from_numpy(tiles), torch.from_numpy(dpm))
            want = module(*args).numpy()
        p = accuracy.parity(got, want)
        total = p if total is None else total.merge(p)
        sizes.append(list(tiles.shape[1:3]))
    assert total is not None
    if total.max_abs_diff > MAX_PARITY_DIFF:
        raise MfpiError(
            f"ONNX export does not match PyTorch: max |diff| {total.max_abs_diff} uint8 levels "
            f"(> {MAX_PARITY_DIFF}), {total.share_differing:.2e} of values differ"
        )
    return {**total.to_dict(), "tile_sizes": sizes, "real_tiles": int(len(real))}


# ---------------------------------------------------------------- cache of the default model


def cached_default_engine(log: Log = print, *, int8: bool | None = None) -> Path:
    """The bundled default model exported in the user cache (exported on first use): fp32 ONNX,
    and the int8 variant where OpenVINO is installed (`int8`: None) or as told. An int8 variant
    that fails its gate is left out, said in the log, and the rest of the export is kept (not
    exported again)."""
    found = exported_default_engine()
    if found is not None:
        try:
            EngineFolder(found).verify_all()
            return found
        except MfpiError as exc:  # damaged in the cache (disk, an interrupted copy): made again, not a dead end
            log(f"the cached export of the bundled model is damaged ({exc}); exporting it again")
            shutil.rmtree(found, ignore_errors=True)
    target = default_engine_folder()
    with_int8 = default_with_int8() if int8 is None else int8
    log(f"first use: exporting the bundled model{' (fp32 and int8)' if with_int8 else ''} to {target}")
    try:
        options = ExportOptions(int8=with_int8, int8_optional=True)
        return export_model(default_model.DEFAULT_NAME, target, options, log=log)
    except MfpiError:
        if (target / MANIFEST_NAME).is_file():  # another process won the race
            return target
        raise


def rebuild_engine(folder: str | Path, *, workspace_gb: float | None = None, log: Log = print) -> Path:
    """Rebuild an engine folder's TensorRT engine for this machine's GPU and TensorRT version."""
    from mfpi_deploy.export.trt_build import rebuild_engine_in_place

    return rebuild_engine_in_place(Path(folder), workspace_gb=workspace_gb, log=log)


__all__ = ["ExportOptions", "Exporter", "cached_default_engine", "export_model", "rebuild_engine"]
