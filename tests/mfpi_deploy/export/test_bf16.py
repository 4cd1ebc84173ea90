"""BF16 variant: hint in the manifest, gate (OpenVINO on a bf16 CPU, else emulated), refusal with the numbers."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest

from mfpi_deploy.backends.openvino_backend import no_bf16_reason
from mfpi_deploy.engine.manifest import EngineFolder
from mfpi_deploy.export import bf16 as bf16_mod
from mfpi_deploy.export.accuracy import psnr_per_plane
from mfpi_deploy.export.bf16 import Bf16GateError, emulate_bf16, measure_bf16
from mfpi_deploy.export.calibration import calibration_set
from tests.mfpi_deploy.export.conftest import ort_session
from tests.mfpi_deploy.export.graphs import SHIFT, SPEC, offset_convs

QUIET = {"log": lambda _: None}


def test_bf16_variant_in_manifest(mfpinet_engine):
    m = json.loads((mfpinet_engine / "manifest.json").read_text())
    rep = m["accuracy"]["bf16"]
    assert m["artifacts"]["onnx_bf16"]["hints"] == rep["hints"] == {"INFERENCE_PRECISION_HINT": "bf16"}
    assert rep["threshold_db"] == 45.0  # (min_psnr_db >= it is what the export raises on: see the refusals below)
    figures = rep["runtimes"]["openvino"]
    assert len(figures["psnr_db_real"]) == len(figures["psnr_db_simulated"]) == 11
    assert rep["min_psnr_db"] == figures["min_psnr_db"] == min(figures["psnr_db_real"] + figures["psnr_db_simulated"])
    assert rep["method"] == figures["method"] == ("emulated" if no_bf16_reason() else "openvino")
    if rep["method"] == "emulated":
        assert "this CPU has no bfloat16 arithmetic" in rep["note"] or "not installed" in rep["note"]
        assert figures["min_psnr_db"] < 100  # really rounded, not fp32 again
    assert EngineFolder(mfpinet_engine).artifact("onnx_bf16") == mfpinet_engine / "model.onnx"


def test_emulated_bf16_rounds_the_network_not_the_output_tail(mfpinet_engine, tmp_path):
    model = onnx.load(str(mfpinet_engine / "model.onnx"))
    emulated = emulate_bf16(model)
    onnx.checker.check_model(emulated, full_check=True)
    casts = [n for n in emulated.graph.node if n.op_type == "Cast" and n.name.startswith("bf16_round_")]
    assert casts and all(n.attribute[0].i == onnx.TensorProto.BFLOAT16 for n in casts)
    onnx.save(emulated, str(tmp_path / "e.onnx"))
    real, sim = calibration_set(1, 48, 2)
    tiles = np.concatenate([real, sim])
    a = ort_session(mfpinet_engine / "model.onnx").run(None, {"tiles": tiles})[0]
    b = ort_session(tmp_path / "e.onnx").run(None, {"tiles": tiles})[0]
    assert not np.array_equal(a, b) and min(psnr_per_plane(b, a)) >= 45


def test_a_graph_bf16_cannot_hold_is_refused_with_the_numbers(tmp_path):
    """graphs.offset_convs adds 1000.2 then subtracts 1000: bfloat16 steps by 4 near 1000, so the first
    convolution's output (OpenVINO's bf16 convolution input, or the emulation's rounding) loses the input
    and the shift: the output is off by up to 255 levels, far under the gate on either method."""
    path = tmp_path / "m.onnx"
    onnx.save(offset_convs(), str(path))
    real, sim = calibration_set(1, 32, 2, [])
    with pytest.raises(Bf16GateError) as err:
        measure_bf16(path, SPEC, real, sim, threads=1, **QUIET)
    msg, gate = str(err.value), err.value
    assert gate.threshold_db == 45.0 and gate.min_psnr_db < 20 * np.log10(255 / (SHIFT * 255))
    assert re.match(
        rf"bf16 accuracy gate failed \((emulated|openvino)\): lowest plane PSNR {gate.min_psnr_db:.1f} dB", msg
    )
    figures = [float(v) for listed in re.findall(r"\[([0-9., ]+)\]", msg) for v in listed.split(",")]
    assert min(figures) == gate.min_psnr_db and "\n" not in msg


def test_bf16_gate_fails_with_the_numbers(mfpinet_engine):
    spec = EngineFolder(mfpinet_engine).spec("onnx", limited=False)
    real, sim = calibration_set(1, 32, 1)
    with pytest.raises(
        Bf16GateError,
        match=r"bf16 accuracy gate failed \((emulated|openvino)\): lowest plane PSNR "
        r"[0-9.]+ dB < 200.0 dB \(real \[.*\], simulated \[",
    ) as err:
        measure_bf16(mfpinet_engine / "model.onnx", spec, real, sim, min_psnr=200.0, threads=1, **QUIET)
    assert "\n" not in str(err.value)


def test_without_openvino_the_gate_is_emulated_and_says_why(mfpinet_engine, monkeypatch):
    import mfpi_deploy.backends.select as select

    real_find_spec = select.importlib.util.find_spec
    monkeypatch.setattr(
        select.importlib.util, "find_spec", lambda name: None if name == "openvino" else real_find_spec(name)
    )
    spec = EngineFolder(mfpinet_engine).spec("onnx", limited=False)
    real, sim = calibration_set(1, 32, 1)
    logs: list[str] = []
    report = measure_bf16(mfpinet_engine / "model.onnx", spec, real, sim, threads=1, log=logs.append)
    assert report.method == bf16_mod.METHOD_EMULATED and "openvino is not installed" in report.note
    assert report.runtimes["openvino"]["min_psnr_db"] == report.min_psnr_db
    assert any("the gate is emulated" in line for line in logs)
