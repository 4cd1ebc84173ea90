"""Trace a network with uint8 pre/post-processing into one self-contained ONNX file.

We use the dynamo exporter (`torch.onnx.export(dynamo=True)`, torch's default and the
maintained path; the TorchScript exporter is deprecated). It takes dynamic height and width
expressed as `stride * Dim`, so the ONNX input shape itself records the stride constraint
("8*h8"); batch is a free dimension. The TorchScript exporter is kept as an option because
it is ~40x faster to run (useful in tests), and yields the same graph on these networks.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from mfpi_deploy.choices import Choice
from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export.versions import DEFAULT_OPSET
from mfpi_deploy.models.uint8_io import Uint8DeepZ, Uint8MFPINet

MIN_OPSET = 18  # the dynamo exporter's lowest
INPUT_NAME = "tiles"
DPM_NAME = "dpm"
OUTPUT_NAME = "planes"
MAX_SIDE = 32768  # largest tile side the exported graph declares


class Exporter(Choice):
    """Which torch exporter turns the network into ONNX."""

    DYNAMO = "dynamo"
    TORCHSCRIPT = "torchscript"


def deployment_module(net: nn.Module, spec: EngineSpec) -> nn.Module:
    """The network wrapped with uint8 I/O (pre- and post-processing inside the graph)."""
    wrap = Uint8DeepZ if spec.needs_dpm else Uint8MFPINet
    return wrap(net.float().eval()).eval()


def example_inputs(spec: EngineSpec, batch: int = 2, side: int | None = None) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with: a small uint8 batch on the stride grid (+ DPM for Deep-Z)."""
    side = side or 4 * spec.stride
    gen = torch.Generator().manual_seed(0)
    tiles = torch.randint(0, 256, (batch, side, side + spec.stride, spec.channels), dtype=torch.uint8, generator=gen)
    if spec.needs_dpm:
        return tiles, torch.zeros(batch, dtype=torch.float32)
    return (tiles,)


def export_onnx(
    net: nn.Module, spec: EngineSpec, path: Path, *, opset: int = DEFAULT_OPSET, exporter: Exporter = Exporter.DYNAMO
) -> onnx.ModelProto:
    """Write `path` (weights inside, dynamic N/H/W) and return the checked model."""
    check_opset(opset)
    module = deployment_module(net, spec)
    args = example_inputs(spec)
    inputs = [INPUT_NAME, DPM_NAME] if spec.needs_dpm else [INPUT_NAME]
    with _quiet():
        if exporter is Exporter.DYNAMO:
            batch = torch.export.Dim("batch", min=1, max=4096)
            side = MAX_SIDE // spec.stride
            h = torch.export.Dim(f"h{spec.stride}", min=1, max=side)
            w = torch.export.Dim(f"w{spec.stride}", min=1, max=side)
            dyn: dict[str, dict[int, object]] = {INPUT_NAME: {0: batch, 1: spec.stride * h, 2: spec.stride * w}}
            if spec.needs_dpm:
                dyn[DPM_NAME] = {0: batch}
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                dynamic_shapes=dyn,
                opset_version=opset,
                input_names=inputs,
                output_names=[OUTPUT_NAME],
                verbose=False,
            )
            model = program.model_proto
        else:
            axes = {
                INPUT_NAME: {0: "batch", 1: "height", 2: "width"},
                OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"},
            }
            if spec.needs_dpm:
                axes[DPM_NAME] = {0: "batch"}
            buf = io.BytesIO()
            torch.onnx.export(
                module,
                args,
                buf,
                dynamo=False,
                opset_version=opset,
                input_names=inputs,
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
            )
            model = onnx.load_from_string(buf.getvalue())
    # Stale value_info (types of intermediates) would hinder later graph rewrites; shape
    # inference recreates it on load.
    del model.graph.value_info[:]
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(path), save_as_external_data=False)
    return model


def check_opset(opset: int) -> None:
    """Refuse opsets the exporter or this onnx package cannot write."""
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise MfpiError(f"opset {opset} is not supported: use {MIN_OPSET}..{newest} (default {DEFAULT_OPSET})")


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress prints, warnings and log lines (one-line CLI output)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
