"""Rows per backend x precision: which variants run where, each with its accuracy gate from the manifest,
bf16 skipped on a CPU without bfloat16 (with the reason), a variant failing its gate shown failed with its figure."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from mfpi_deploy.backends import openvino_backend, select
from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.bench import engines
from mfpi_deploy.bench.engines import export_variants, not_here, parse_precisions, planned
from mfpi_deploy.cli.bench import main
from mfpi_deploy.engine.precision import Precision
from mfpi_deploy.errors import MfpiError

TINY = ["--width", "8", "--tile", "32", "--runs", "1", "--warmup", "0", "--threads", "1", "--matmul-size", "64"]
NO_BF16 = ["FP32", "INT8"]  # what this machine's CPU reports to OpenVINO
# 30 dB: rms error 8 of 255 levels (255 / 10 ** (30 / 20) = 8.1), three bits of the output: static uint8
# activations with 7-bit weights keep an untrained network's output within a few levels of its fp32.
INT8_GATE_DB = 30.0


def test_parse_precisions():
    assert parse_precisions(None) is None
    assert parse_precisions("fp32, int8,bf16,int8") == ("fp32", "int8", "bf16")
    with pytest.raises(MfpiError, match="unknown precision 'fp8'"):
        parse_precisions("fp32,fp8")
    with pytest.raises(MfpiError, match="name at least one"):
        parse_precisions(" , ")


def test_planned_precisions_per_backend():
    p = Precision
    assert planned(BackendKind.ORT_CPU, None) == (p.FP32, p.FP16, p.INT8)
    assert planned(BackendKind.OPENVINO, None) == (p.FP32, p.BF16, p.INT8)
    assert planned(BackendKind.OPENVINO, ("int8", "fp16")) == (p.INT8,)
    assert planned(BackendKind.ORT_CPU, ("bf16",)) == ()
    assert planned(BackendKind.TORCH, ("int8",)) == (p.FP32,)  # --precisions is for the CPU engine folders
    assert planned(BackendKind.TRT, None, fp16=True) == (p.FP16,)
    assert planned(BackendKind.TORCH, None, fp16=True) == (p.FP32,)


def test_bf16_needs_bf16_arithmetic(monkeypatch):
    monkeypatch.setattr(openvino_backend, "cpu_capabilities", lambda: NO_BF16)
    assert "no bfloat16 arithmetic (OpenVINO's CPU capabilities: FP32, INT8)" in not_here(
        BackendKind.OPENVINO, Precision.BF16
    )
    assert not_here(BackendKind.OPENVINO, Precision.INT8) is None
    kinds = [BackendKind.ORT_CPU, BackendKind.OPENVINO, BackendKind.TORCH]
    assert export_variants(kinds, None) == {Precision.FP16, Precision.INT8}
    monkeypatch.setattr(openvino_backend, "cpu_capabilities", lambda: ["FP32", "INT8", "BF16"])
    assert not_here(BackendKind.OPENVINO, Precision.BF16) is None
    assert export_variants(kinds, ("fp32", "bf16")) == {Precision.BF16}


@pytest.mark.skipif(
    select.runtime_missing(BackendKind.ORT_CPU) or select.runtime_missing(BackendKind.OPENVINO),
    reason="needs onnxruntime and OpenVINO",
)
def test_rows_per_backend_and_precision(tmp_path, monkeypatch):
    """Real exports of tiny networks: one row per backend x precision asked, gates from the manifest beside the
    latencies, bf16 skipped with the reason, Deep-Z's fp16 failing a 200 dB gate shown failed with its figure."""
    monkeypatch.setattr(openvino_backend, "cpu_capabilities", lambda: NO_BF16)
    real_export = engines.export_model

    def export_model(source, out_dir, options, *, log=print):
        # The int8 gate at INT8_GATE_DB (not the 45 dB default, whose fp32-fallback search takes minutes on
        # these tiny random networks): a working quantization passes it, a broken one (no or constant
        # calibration, a wrong scale) is far under it and the export would refuse the int8 rows.
        options = dataclasses.replace(options, int8_min_psnr=INT8_GATE_DB)
        if source.name.startswith("deepz"):
            options = dataclasses.replace(options, fp16_min_psnr=200.0)
        return real_export(source, out_dir, options, log=log)

    monkeypatch.setattr(engines, "export_model", export_model)
    eng = tmp_path / "eng"
    args = [
        "--backend",
        "ort-cpu",
        "--backend",
        "openvino",
        "--precisions",
        "fp32,fp16,int8,bf16",
        *TINY,
        "--engines-dir",
        str(eng),
        "--json",
        str(tmp_path / "r.json"),
        "--markdown",
        str(tmp_path / "r.md"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["schema_version"] == 2
    rows = {(v["backend"], v["precision"]): v for v in data["variants"]}
    assert list(rows) == [
        ("ort-cpu", "fp32"),
        ("ort-cpu", "fp16"),
        ("ort-cpu", "int8"),
        ("openvino", "fp32"),
        ("openvino", "bf16"),
        ("openvino", "int8"),
    ]
    assert {k: v["status"] for k, v in rows.items()} == {
        ("ort-cpu", "fp32"): "measured",
        ("ort-cpu", "fp16"): "gate failed",
        ("ort-cpu", "int8"): "measured",
        ("openvino", "fp32"): "measured",
        ("openvino", "bf16"): "skipped",
        ("openvino", "int8"): "measured",
    }
    assert "no bfloat16 arithmetic" in rows[("openvino", "bf16")]["reason"]
    failed = rows[("ort-cpu", "fp16")]
    deepz_fp16 = failed["accuracy"]["deepz"]
    assert deepz_fp16["passed"] is False and deepz_fp16["threshold_db"] == 200.0 and deepz_fp16["min_psnr_db"] < 200
    assert failed["reason"] == f"Deep-Z {deepz_fp16['min_psnr_db']:.1f} dB < 200.0 dB"
    assert failed["accuracy"]["mfpinet"]["passed"] is True  # MFPINet's fp16 passed its gate
    for backend in ("ort-cpu", "openvino"):  # every model's int8 measured against the real gate
        for figures in rows[(backend, "int8")]["accuracy"].values():
            assert figures["threshold_db"] == INT8_GATE_DB and figures["passed"] is True
    # the gate figures are the manifest's, per runtime
    for backend, runtime in (("ort-cpu", "onnxruntime"), ("openvino", "openvino")):
        for model in ("mfpinet", "mfpinet-residual", "deepz"):
            folder = next(p for p in eng.iterdir() if p.is_dir() and p.name.startswith(f"{model}-random-cpu-"))
            want = json.loads((folder / "manifest.json").read_text())["accuracy"]["int8"]["runtimes"][runtime]
            assert rows[(backend, "int8")]["accuracy"][model]["min_psnr_db"] == want["min_psnr_db"]
            assert rows[(backend, "int8")]["accuracy"][model]["runtime"] == runtime
    measured = [k for k, v in rows.items() if v["status"] == "measured"]
    assert [(r["backend"], r["precision"]) for r in data["results"]] == [k for k in measured for _ in range(3)]
    assert [(s["backend"], s["precision"]) for s in data["speedup"]] == measured
    int8 = next(
        r for r in data["results"] if (r["backend"], r["precision"], r["model"]) == ("openvino", "int8", "deepz")
    )
    assert int8["accuracy"] == rows[("openvino", "int8")]["accuracy"]["deepz"]
    assert next(r for r in data["results"] if r["precision"] == "fp32")["accuracy"] is None  # the reference
    assert sorted(p.name for p in eng.iterdir() if p.name.startswith("deepz")) == [
        "deepz-random",
        "deepz-random-cpu-fp32-fp16-int8-64-b1",  # the checkpoint, the engine folder
        "deepz-random-cpu-fp32-fp16-int8-64-b1.failed-gates.json",
    ]
    assert not (eng / "deepz-random-cpu-fp32-fp16-int8-64-b1" / "model.fp16.onnx").exists()
    md = (tmp_path / "r.md").read_text()
    assert "## Speed-up of MFPINet over Deep-Z by backend and precision" in md
    assert (
        f"| ort-cpu | fp16 | - | - | - | - | {failed['accuracy']['mfpinet']['min_psnr_db']:.1f} dB | "
        f"{deepz_fp16['min_psnr_db']:.1f} dB < 200 dB | gate failed: Deep-Z " in md
    )
    assert "| openvino | bf16 | - | - | - | - | - | - | skipped: this CPU has no bfloat16 arithmetic" in md
    assert "ort-cpu int8: MFPINet is " in result.stdout and "gate failed: Deep-Z" in result.stdout
    # engines reused: no export, and the failed gate still reported with its figure
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "exporting" not in again.stderr
    assert json.loads((tmp_path / "r.json").read_text())["variants"][1] == failed


def test_precisions_no_backend_runs(monkeypatch):
    monkeypatch.setattr(select, "runtime_missing", lambda kind: None if kind is BackendKind.ORT_CPU else "not here")
    result = CliRunner().invoke(main, ["--backend", "ort-cpu", "--precisions", "bf16", *TINY])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: no backend runs --precisions bf16 (ort-cpu runs fp32, fp16, int8)"
    )
