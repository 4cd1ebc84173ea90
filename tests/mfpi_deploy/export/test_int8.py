"""INT8 export: QDQ graph, gate per runtime in the manifest, measured fp32 convolutions, refusal with the numbers."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
import torch

from mfpi_deploy.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from mfpi_deploy.engine.manifest import EngineFolder
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export import int8 as int8_mod
from mfpi_deploy.export.api import export_model
from mfpi_deploy.export.calibration import calibration_set, quantization_tiles
from mfpi_deploy.export.int8 import Int8GateError, export_int8
from mfpi_deploy.export.runtimes import gate_runtimes
from mfpi_deploy.models import create_model
from tests.mfpi_deploy.export.engines import export_options

QUIET = {"log": lambda _: None}


def _quantize_engine(engine, out, gate_side, gate_count, calibration, **options):
    """export_int8 of an engine folder's fp32 graph, gated on `gate_count` real and simulated tiles of
    `gate_side` px, calibrated on `calibration`; one thread, no fallback round."""
    spec = EngineFolder(engine).spec("onnx", limited=False)
    real, sim = calibration_set(1, gate_side, gate_count)
    options = {"threads": 1, "max_rounds": 0, **QUIET, **options}
    return export_int8(engine / "model.onnx", out, spec, real, sim, calibration, **options)


def test_int8_graph_and_manifest(mfpinet_engine):
    model = onnx.load(str(mfpinet_engine / "model.int8.onnx"))
    ops = [n.op_type for n in model.graph.node]
    io_types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert io_types == {"tiles": onnx.TensorProto.UINT8, "planes": onnx.TensorProto.UINT8}
    assert ops.count("Conv") == 58 and "QuantizeLinear" in ops and "DequantizeLinear" in ops
    m = json.loads((mfpinet_engine / "manifest.json").read_text())
    rep = m["accuracy"]["int8"]
    # (min_psnr_db >= threshold_db is what the export raises on: the refusals are below)
    assert rep["threshold_db"] == 45.0 and rep["convs"] == 58
    assert set(rep["runtimes"]) == set(gate_runtimes())  # every runtime installed measured it
    for figures in rep["runtimes"].values():
        assert len(figures["psnr_db_real"]) == len(figures["psnr_db_simulated"]) == 11
        assert figures["min_psnr_db"] == min(figures["psnr_db_real"] + figures["psnr_db_simulated"])
        assert figures["parity"]["values"] > 0
    assert rep["min_psnr_db"] == min(f["min_psnr_db"] for f in rep["runtimes"].values())
    assert rep["quantized_convs"] == 58 - len(rep["fp32_nodes"])
    assert m["artifacts"]["onnx_int8"]["fp32_nodes"] == rep["fp32_nodes"] == sorted(rep["reasons"])
    assert rep["tiles"]["calibration"] == 4 and rep["tiles"]["real"] > 0
    EngineFolder(mfpinet_engine).artifact("onnx_int8")  # hash recorded and checked


def test_calibration_tiles_are_not_gate_tiles():
    real, sim = calibration_set(1, 48, 2)
    calib = quantization_tiles(1, 48, 2, gate_count=2)
    assert len(calib) == 4
    for tile in np.concatenate([real, sim]):
        assert not any(np.array_equal(tile, c) for c in calib)


def _skewed(model: torch.nn.Module) -> torch.nn.Module:
    """Activations INT8 cannot hold: every convolution but the last adds 1000 to its channel 0 (and later
    layers ignore that channel, so fp32 computes the same kind of function): each tensor's range is
    [-a few, thousands], so a per-tensor uint8 step is far coarser than the values that matter."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    width = convs[0].out_channels
    with torch.no_grad():
        for conv in convs[:-1]:
            conv.bias[0] += 1000.0
        for conv in convs[1:]:
            conv.weight[:, 0] = 0
            if conv.in_channels == 2 * width:
                conv.weight[:, width] = 0
        convs[-1].weight.mul_(30.0)  # a spread of outputs, so errors show
    return model


@pytest.fixture(scope="module")
def skewed_checkpoint(tmp_path_factory):
    torch.manual_seed(3)
    folder = tmp_path_factory.mktemp("skewed") / "ckpt"
    config = {"in_channels": 1, "width": 4}
    save_checkpoint(
        _skewed(create_model("mfpinet", **config)), ModelCard(architecture="mfpinet", config=config), folder
    )
    return folder


def test_blown_up_activations_refuse_the_export_with_the_numbers(skewed_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(int8_mod, "MAX_ROUNDS", 1)  # every conv is hit: no round count could rescue it
    with pytest.raises(Int8GateError) as err:
        export_model(skewed_checkpoint, tmp_path / "out", export_options(exporter="torchscript", int8=True), **QUIET)
    msg = str(err.value)
    assert msg.startswith("int8 accuracy gate failed: lowest plane PSNR ") and "< 45.0 dB" in msg
    assert "onnxruntime: real [" in msg and "simulated [" in msg and "kept in fp32 after 1 round(s)" in msg
    assert "\n" not in msg
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_a_convolution_that_breaks_int8_is_found_and_kept_fp32(tmp_path):
    """Only the output block is skewed (conv_block[0] adds 1000 to channel 0, the last conv ignores it):
    its output's quantization and the last conv's input's each break int8; the search finds both."""
    torch.manual_seed(5)
    net = create_model("mfpinet", in_channels=1, width=4)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[-2].bias[0] += 1000.0  # conv_block[0] -> PReLU -> last conv: channel 0 huge
        convs[-1].weight[:, 0] = 0
        convs[-1].weight.mul_(30.0)
    save_checkpoint(net, ModelCard(architecture="mfpinet", config={"in_channels": 1, "width": 4}), tmp_path / "ckpt")
    out = export_model(tmp_path / "ckpt", tmp_path / "out", export_options(exporter="torchscript"), **QUIET)
    spec = EngineFolder(out).spec("onnx", limited=False)
    real, sim = calibration_set(1, 64, 2)
    logs: list[str] = []
    report = export_int8(
        out / "model.onnx",
        tmp_path / "m.int8.onnx",
        spec,
        real,
        sim,
        quantization_tiles(1, 64, 2, gate_count=2),
        threads=1,
        log=logs.append,
    )
    before, last = [n.name for n in onnx.load(str(out / "model.onnx")).graph.node if n.op_type == "Conv"][-2:]
    assert report.fp32_nodes == sorted([before, last]) and report.rounds == 2
    assert report.quantized_convs == 56
    assert report.reasons[before].startswith(f"quantizing {before.replace('/Conv', '/Conv_output_0')} adds ")
    assert report.reasons[last].startswith("last convolution; keeping it in fp32 gives the probe's lowest plane")
    assert any("keeping" in line and last in line for line in logs)
    assert load_checkpoint(tmp_path / "ckpt")  # the source is untouched


def test_gate_threshold_is_an_option(mfpinet_engine, tmp_path):
    with pytest.raises(MfpiError, match=r"lowest plane PSNR [0-9.]+ dB < 200.0 dB"):
        _quantize_engine(
            mfpinet_engine, tmp_path / "x.onnx", 32, 1, quantization_tiles(1, 32, 1, gate_count=1), min_psnr=200.0
        )
    assert not (tmp_path / "x.onnx").exists()


def test_a_constant_calibration_is_refused_with_the_numbers(mfpinet_engine, tmp_path):
    """Calibrated on black tiles only, every activation range is the biases' alone: real tiles clip at the
    first convolution. The same graph calibrated on the real calibration tiles is the one the export kept
    (its manifest figure); the black-calibrated one must fall under the gate, and be refused with its figures."""
    black = np.zeros((4, 32, 32, 1), np.uint8)
    with pytest.raises(Int8GateError) as err:
        _quantize_engine(mfpinet_engine, tmp_path / "x.onnx", 32, 2, black)
    msg, gate = str(err.value), err.value
    assert gate.threshold_db == 45.0 and gate.min_psnr_db < 45.0
    assert msg.startswith(f"int8 accuracy gate failed: lowest plane PSNR {gate.min_psnr_db:.1f} dB < 45.0 dB (")
    figures = [float(v) for listed in re.findall(r"\[([0-9., ]+)\]", msg) for v in listed.split(",")]
    assert len(figures) == 2 * 11 * len(gate_runtimes()) and min(figures) == gate.min_psnr_db
    assert not (tmp_path / "x.onnx").exists()
    # the calibration is the cause: the export's own calibration tiles pass at once (no round)
    report = _quantize_engine(mfpinet_engine, tmp_path / "y.onnx", 32, 2, quantization_tiles(1, 32, 2, gate_count=2))
    assert report.rounds == 0
