"""Which precision variants mfpi-bench runs on each backend (`--precisions`), and which cannot run on this CPU."""

from __future__ import annotations

from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.backends.select import KIND_PRECISIONS
from mfpi_deploy.engine.precision import Precision
from mfpi_deploy.errors import MfpiError

# CPU backends whose engine folders hold precision variants; the others run one engine each (GPU: --fp16).
VARIANT_KINDS = (BackendKind.ORT_CPU, BackendKind.OPENVINO)
GPU_KINDS = (BackendKind.TRT, BackendKind.ORT_CUDA)


def parse_precisions(text: str | None) -> tuple[str, ...] | None:
    """'fp32,int8,bf16' -> ('fp32', 'int8', 'bf16') in that order, duplicates dropped; None: every one."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise MfpiError("--precisions: name at least one of fp32, fp16, bf16, int8 (comma-separated)")
    return tuple(dict.fromkeys(Precision.parse(n).value for n in names))


def planned(kind: BackendKind, asked: tuple[str, ...] | None, fp16: bool = False) -> tuple[Precision, ...]:
    """The precisions `kind` is measured in: on ort-cpu and openvino every variant it runs (or those of `asked`
    it runs); on TensorRT / onnxruntime CUDA fp16 with `fp16`, else fp32; torch fp32."""
    if kind in VARIANT_KINDS:
        return tuple(p for p in KIND_PRECISIONS[kind] if asked is None or p.value in asked)
    return (Precision.FP16 if fp16 and kind in GPU_KINDS else Precision.FP32,)


def not_here(kind: BackendKind, precision: Precision) -> str | None:
    """Why this machine cannot run `precision` on `kind` whatever the engine (bf16 without bf16 arithmetic)."""
    if kind is BackendKind.OPENVINO and precision is Precision.BF16:
        from mfpi_deploy.backends import openvino_backend

        return openvino_backend.no_bf16_reason()
    return None


def export_variants(kinds: list[BackendKind], asked: tuple[str, ...] | None) -> frozenset[Precision]:
    """The variants besides fp32 to export for the CPU backends in `kinds` (one folder per network serves
    them all): every one some backend will run here."""
    return frozenset(
        p
        for kind in kinds
        if kind in VARIANT_KINDS
        for p in planned(kind, asked)
        if p is not Precision.FP32 and not_here(kind, p) is None
    )
