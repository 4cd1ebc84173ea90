"""mfpi-bench end to end on the CPU (tiny networks) and its one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mfpi_deploy.backends import select
from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.cli.bench import main

TINY = ["--width", "8", "--tile", "32", "--runs", "2", "--warmup", "1", "--threads", "1", "--matmul-size", "128"]


def test_quick_runs_end_to_end_on_cpu(tmp_path):
    out = tmp_path / "out"
    args = [
        "--quick",
        "--backend",
        "torch",
        *TINY,
        "--pipeline",
        "--note",
        "shared machine",
        "--json",
        str(out / "r.json"),
        "--markdown",
        str(out / "r.md"),
        "--chart",
        str(out / "r.png"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "QUICK MODE" in result.stdout and "faster than Deep-Z" in result.stdout
    assert "torch fp32: MFPINet residual costs " in result.stdout
    data = json.loads((out / "r.json").read_text())
    assert data["quick"] is True and data["settings"]["tile"] == 32 and data["settings"]["out_tile"] == 64
    assert [r["model"] for r in data["results"]] == ["mfpinet", "mfpinet-residual", "deepz"]
    assert all(r["latency_ms"]["n"] == 2 for r in data["results"])
    seconds = {r["model"]: r["latency_ms"]["median"] / 1e3 for r in data["results"]}
    (speedup,), (residual,) = data["speedup"], data["residual_cost"]
    assert (
        (speedup["backend"], speedup["precision"]) == (residual["backend"], residual["precision"]) == ("torch", "fp32")
    )
    assert data["variants"] == [
        {"backend": "torch", "precision": "fp32", "status": "measured", "reason": "", "accuracy": {}}
    ]
    assert all(r["accuracy"] is None for r in data["results"])
    assert speedup["rounds"] == residual["rounds"] == 2
    assert speedup["ratio_of_median_latencies"] == pytest.approx(seconds["deepz"] / seconds["mfpinet"])
    assert residual["ratio_of_median_latencies"] == pytest.approx(seconds["mfpinet-residual"] / seconds["mfpinet"])
    assert residual["extra_percent"] == pytest.approx(100 * (residual["median"] - 1))
    assert data["results"][2]["passes_per_stack"] == 11
    pipe = data["pipeline"][0]
    assert pipe["tiles"] == 16 and pipe["tile"] == 32 and pipe["halo"] == 8 and pipe["slide_side"] == 64
    assert pipe["efficiency"] == pytest.approx(
        pipe["engine_megavoxels_per_s_in_pipeline"] / pipe["bare_engine_megavoxels_per_s"]
    )
    # 16 tiles of 11 x 64 x 64 output voxels computed; the slide's stack is 11 x 128 x 128.
    assert pipe["engine_megavoxels_per_s_in_pipeline"] == pytest.approx(16 * 11 * 64 * 64 / pipe["loop_seconds"] / 1e6)
    assert pipe["end_to_end_megavoxels_per_s"] == pytest.approx(11 * 128 * 128 / pipe["total_seconds"] / 1e6)
    assert pipe["halo_overhead"] == pytest.approx(0.75)
    mm = data["matmul_reference"]
    assert [(m["backend"], m["method"], m["size"], m["threads"], m["seconds"]["n"]) for m in mm] == [
        ("torch", "torch.matmul", 128, 1, 2)
    ]
    assert data["results"][0]["matmul_share"] == pytest.approx(
        data["results"][0]["achieved_gflops_per_s"] / mm[0]["gflops_per_s"]
    )
    assert "shared machine" in data["notes"]
    assert (out / "r.md").read_text().startswith("# mfpi-bench")
    assert (out / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.iterdir()) == ["r.json", "r.md", "r.png"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tile", "30"], "--tile 30: must be a positive multiple of 8"),
        (["--runs", "0"], "--runs 0: must be at least 1"),
        (["--backend", "cuda"], "unknown backend kind 'cuda'"),
        (["--width", "6"], "--width 6: must be a multiple of 4"),
        (["--json", "/dev/null/r.json"], "cannot create folder /dev/null"),
        (["--chart", "latency.jpgx"], "--chart latency.jpgx: the chart is a PNG image, name it .png"),
    ],
)
def test_bad_options_are_one_line_errors(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


@pytest.mark.skipif(select.runtime_missing(BackendKind.TRT) is None, reason="TensorRT is available here")
def test_unavailable_backend_is_an_error():
    result = CliRunner().invoke(main, ["--backend", "trt", *TINY])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: backend trt is not available here: ")
    assert result.stderr.count("\n") == 1


@pytest.mark.gpu
@pytest.mark.parametrize("kind", [BackendKind.TRT, BackendKind.ORT_CUDA])
def test_gpu_backends_end_to_end(tmp_path, kind):
    if reason := select.runtime_missing(kind):
        pytest.skip(f"{kind.value}: {reason}")
    result = CliRunner().invoke(main, ["--backend", kind.value, *TINY, "--json", str(tmp_path / "g.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "g.json").read_text())
    assert all(r["device"] == "cuda" and r["peak_device_mib"] is not None for r in data["results"])
    assert [s["backend"] for s in data["speedup"]] == [kind.value]


def test_auto_skips_a_backend_whose_engines_fail(monkeypatch, tmp_path):
    """With auto, a backend that fails to build is skipped with its reason; named, it is an error."""
    from mfpi_deploy.bench import engines
    from mfpi_deploy.errors import MfpiError

    real_folder = engines.engine_folder

    def flaky_folder(req, work_dir, log):
        if req.kind is BackendKind.ORT_CPU:
            raise MfpiError("export failed: simulated")
        return real_folder(req, work_dir, log)

    monkeypatch.setattr(engines, "engine_folder", flaky_folder)
    monkeypatch.setattr(
        select, "runtime_missing", lambda kind: None if kind in (BackendKind.ORT_CPU, BackendKind.TORCH) else "not here"
    )
    result = CliRunner().invoke(main, [*TINY, "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert [s["backend"] for s in data["speedup"]] == ["torch"]
    assert "export failed: simulated" in data["skipped_backends"]["ort-cpu"]
    named = CliRunner().invoke(main, ["--backend", "ort-cpu", *TINY])
    assert named.exit_code == 2 and named.stderr.splitlines()[-1] == "error: export failed: simulated"


@pytest.mark.skipif(select.runtime_missing(BackendKind.ORT_CPU) is not None, reason="onnxruntime is not installed")
def test_ort_cpu_through_the_real_export(tmp_path):
    """ort-cpu engines exported by mfpi_deploy.export, kept in --engines-dir and reused."""
    args = [
        "--backend",
        "ort-cpu",
        "--precisions",
        "fp32",
        *TINY,
        "--runs",
        "1",
        "--warmup",
        "0",
        "--engines-dir",
        str(tmp_path / "eng"),
        "--json",
        str(tmp_path / "r.json"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert [(r["backend"], r["model"], r["precision"]) for r in data["results"]] == [
        ("ort-cpu", "mfpinet", "fp32"),
        ("ort-cpu", "mfpinet-residual", "fp32"),
        ("ort-cpu", "deepz", "fp32"),
    ]
    folders = sorted(p.name for p in (tmp_path / "eng").iterdir() if (p / "manifest.json").is_file())
    assert folders == [
        "deepz-random-ort-cpu-fp32-64-b1",
        "mfpinet-random-ort-cpu-fp32-32-b1",
        "mfpinet-residual-random-ort-cpu-fp32-32-b1",
    ]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "exporting" not in again.stderr  # reused, not exported again
