"""FP16 ONNX: the graph pass, measured fp32 nodes, and the PSNR gate."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from mfpi_deploy.engine.spec import EngineSpec
from mfpi_deploy.export import fp16 as fp16_mod
from mfpi_deploy.export.accuracy import psnr_per_plane
from mfpi_deploy.export.calibration import calibration_set
from mfpi_deploy.export.fp16 import (
    FP16_SAFE_MAX,
    Fp16GateError,
    export_fp16,
    measure_ranges,
    output_tail,
    overflow_nodes,
)
from mfpi_deploy.export.fp16_graph import convert_to_fp16
from tests.mfpi_deploy.export.conftest import ort_session
from tests.mfpi_deploy.export.graphs import SHIFT, SPEC, offset_convs, overflow


def test_fp16_graph_is_float16_with_uint8_io(mfpinet_engine):
    model = onnx.load(str(mfpinet_engine / "model.fp16.onnx"))
    onnx.checker.check_model(model, full_check=True)
    io_types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert io_types == {"tiles": TensorProto.UINT8, "planes": TensorProto.UINT8}
    conv_weights = [
        model.graph.initializer[i] for i, t in enumerate(model.graph.initializer) if t.dims and len(t.dims) == 4
    ]
    assert conv_weights and all(t.data_type == TensorProto.FLOAT16 for t in conv_weights)


def test_fp16_report_in_manifest_and_independent_psnr_check(mfpinet_engine, real_stack_path):
    m = json.loads((mfpinet_engine / "manifest.json").read_text())
    rep = m["accuracy"]["fp16"]
    assert rep["threshold_db"] == 45.0  # (min_psnr_db >= it is what the export raises on: the refusals are below)
    assert len(rep["psnr_db_simulated"]) == 11 and len(rep["psnr_db_real"]) == 11  # per plane
    assert rep["min_psnr_db"] == min(rep["psnr_db_real"] + rep["psnr_db_simulated"])
    assert rep["tiles"]["real"] > 0  # the real images shipped with the package were used
    assert m["artifacts"]["onnx_fp16"]["fp32_nodes"] == rep["fp32_nodes"] == sorted(rep["reasons"])
    # On fresh tiles (other grid spots, random tiles) the fp16 graph stays above the gate too: the gate's
    # threshold is a promise about any tile, not only the ones it measured.
    real, sim = calibration_set(1, 48, 3, [real_stack_path])
    tiles = np.concatenate([real, np.random.default_rng(5).integers(0, 256, (2, 48, 48, 1), dtype=np.uint8)])
    a = ort_session(mfpinet_engine / "model.onnx").run(None, {"tiles": tiles})[0]
    b = ort_session(mfpinet_engine / "model.fp16.onnx").run(None, {"tiles": tiles})[0]
    assert min(psnr_per_plane(b, a)) >= 45.0


def test_output_tail_is_kept_fp32_when_measured_to_matter(mfpinet_engine):
    """An untrained net outputs ~0.5 (127.5 levels: every rounding is on the edge), so fp16 x*255 hurts."""
    rep = json.loads((mfpinet_engine / "manifest.json").read_text())["accuracy"]["fp16"]
    tail = output_tail(onnx.load(str(mfpinet_engine / "model.onnx")))
    assert tail and set(tail) <= set(rep["fp32_nodes"])
    assert any("output tail" in r for r in rep["reasons"].values())


def test_deepz_fp16_keeps_dpm_input_float32(deepz_engine):
    model = onnx.load(str(deepz_engine / "model.fp16.onnx"))
    assert model.graph.input[1].type.tensor_type.elem_type == TensorProto.FLOAT
    rep = json.loads((deepz_engine / "manifest.json").read_text())["accuracy"]["fp16"]
    assert len(rep["psnr_db_simulated"]) == 1
    assert rep["min_psnr_db"] == min(rep["psnr_db_real"] + rep["psnr_db_simulated"])


def test_overflowing_nodes_are_found_by_measurement_and_kept_fp32(tmp_path):
    model = overflow()
    spec = EngineSpec(architecture="mfpinet", channels=1, planes=1, scale=1, stride=8, planes_um=(0.0,))
    tiles = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 1), dtype=np.uint8)
    ranges = measure_ranges(model, spec, [tiles], threads=1)
    assert ranges["big"] == pytest.approx(1e6 * tiles.max() / 255, rel=1e-5)
    kept = overflow_nodes(model, ranges)
    assert set(kept) == {"mul_big", "div_back"} and "float16 max 65504" in kept["mul_big"]
    assert ranges["k1e6"] == 1e6  # constants are measured too: 1e6 itself is beyond float16
    # converting everything overflows (inf -> garbage); keeping the measured nodes is exact
    path32, path16 = tmp_path / "m.onnx", tmp_path / "m16.onnx"
    onnx.save(model, str(path32))
    naive = convert_to_fp16(model)
    onnx.save(naive, str(tmp_path / "naive.onnx"))
    want = ort_session(path32).run(None, {"tiles": tiles})[0]
    bad = ort_session(tmp_path / "naive.onnx").run(None, {"tiles": tiles})[0]
    assert not np.array_equal(bad, want)
    report = export_fp16(path32, path16, spec, tiles[:0], tiles, threads=1, log=lambda _: None)
    assert {"mul_big", "div_back"} <= set(report.fp32_nodes) and report.max_abs_activation >= 65504
    got = ort_session(path16).run(None, {"tiles": tiles})[0]
    assert np.abs(got.astype(int) - want).max() <= 1


def test_gate_fails_with_the_numbers(mfpinet_engine, tmp_path):
    spec = EngineSpec(architecture="mfpinet", channels=1, planes=11, scale=2, stride=8, planes_um=tuple(range(11)))
    real, sim = calibration_set(1, 32, 2, [])
    with pytest.raises(Fp16GateError, match=r"lowest plane PSNR [0-9.]+ dB < 200.0 dB .*simulated \[") as err:
        export_fp16(
            mfpinet_engine / "model.onnx",
            tmp_path / "x.onnx",
            spec,
            real,
            sim,
            min_psnr=200.0,
            threads=1,
            log=lambda _: None,
        )
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x.onnx").exists()


def test_a_constant_float16_cannot_hold_is_refused_with_the_numbers_or_kept_fp32(tmp_path, monkeypatch):
    """graphs.offset_convs adds 1000.2 then subtracts 1000: float16 rounds the constant to 1000.0, so the
    output loses its 0.2 shift (51 levels wherever not clipped): the lowest plane is at most a few dB
    above 20 log10(255 / 51) = 14.0 dB. No value overflows, so only the gate's measurement catches it."""
    path = tmp_path / "m.onnx"
    onnx.save(offset_convs(), str(path))
    real, sim = calibration_set(1, 32, 2, [])
    monkeypatch.setattr(fp16_mod, "MAX_ROUNDS", 0)  # the gate alone, without the search that could rescue it
    with pytest.raises(Fp16GateError) as err:
        export_fp16(path, tmp_path / "m16.onnx", SPEC, real, sim, threads=1, log=lambda _: None)
    msg, gate = str(err.value), err.value
    assert gate.threshold_db == 45.0 and 20 * np.log10(255 / (SHIFT * 255)) - 0.1 <= gate.min_psnr_db < 45.0
    assert msg.startswith(f"fp16 accuracy gate failed: lowest plane PSNR {gate.min_psnr_db:.1f} dB < 45.0 dB (real [")
    figures = [float(v) for listed in re.findall(r"\[([0-9., ]+)\]", msg) for v in listed.split(",")]
    assert min(figures) == gate.min_psnr_db and "\n" not in msg
    assert not (tmp_path / "m16.onnx").exists()
    # with its rounds the search finds the convolution whose constant float16 cannot hold, and keeps it
    monkeypatch.setattr(fp16_mod, "MAX_ROUNDS", 8)
    report = export_fp16(path, tmp_path / "m16.onnx", SPEC, real, sim, threads=1, log=lambda _: None)
    assert report.fp32_nodes == ["add_offset"] and report.max_abs_activation < FP16_SAFE_MAX
    tiles = np.concatenate([real, sim])
    want = ort_session(path).run(None, {"tiles": tiles})[0]
    assert np.array_equal(ort_session(tmp_path / "m16.onnx").run(None, {"tiles": tiles})[0], want)
