"""Statistics of timed rounds; report shape: JSON keys (with `speedup`), Markdown sections, terminal table, PNG chart;
the machine description."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mfpi_deploy.bench.chart import render_chart, save_chart
from mfpi_deploy.bench.machine import MachineInfo
from mfpi_deploy.bench.report import (
    BenchReport,
    MatmulReference,
    ModelResult,
    PipelineResult,
    Ratio,
    Variant,
    format_table,
    paired_ratios,
    summarize,
    to_json,
    to_markdown,
)
from mfpi_deploy.bench.workload import BenchModel, Workload
from mfpi_deploy.engine.manifest import GateFigure


def test_summary_of_known_samples():
    s = summarize([10, 1, 9, 2, 8, 3, 7, 4, 6, 5])  # 1..10, shuffled
    assert s.n == 10
    assert s.median == pytest.approx(5.5)
    # Linear interpolation: position (n - 1) * q -> 0.9 and 8.1 between order statistics.
    assert s.p10 == pytest.approx(1.9)
    assert s.p90 == pytest.approx(9.1)
    assert (s.mean, s.min, s.max) == (pytest.approx(5.5), 1.0, 10.0)
    s = summarize([3.0, 100.0, 1.0])  # odd count: the median is the middle sample
    assert s.median == 3.0 and s.p10 == pytest.approx(1.4) and s.p90 == pytest.approx(80.6)
    s = summarize([0.25])
    assert (s.median, s.p10, s.p90, s.min, s.max) == (0.25,) * 5


@pytest.mark.parametrize("n", [2, 7, 50, 101])
def test_summary_agrees_with_numpy(n):
    x = np.random.default_rng(n).lognormal(size=n)
    s = summarize(list(x))
    assert s.median == pytest.approx(np.median(x))
    assert s.p10 == pytest.approx(np.percentile(x, 10))
    assert s.p90 == pytest.approx(np.percentile(x, 90))
    assert s.mean == pytest.approx(x.mean())


def test_scaled_summary_and_bad_input():
    s = summarize([1.0, 2.0, 3.0]).scaled(1000)
    assert (s.n, s.median, s.p10, s.p90, s.mean, s.min, s.max) == (
        3,
        pytest.approx(2000),
        pytest.approx(1200),
        pytest.approx(2800),
        pytest.approx(2000),
        1000,
        3000,
    )
    with pytest.raises(ValueError):
        summarize([])


def test_paired_ratios_are_per_round():
    deepz = [10.0, 20.0, 40.0]  # a machine getting slower...
    mfpi = [0.5, 1.0, 2.0]  # ...slows both runs of a round alike
    assert paired_ratios(deepz, mfpi) == [20.0, 20.0, 20.0]
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])


def _workload(model: BenchModel, passes: int, parameters: int, flops_per_pass: int) -> Workload:
    return Workload(
        model,
        batch=1,
        in_tile=32 if passes == 1 else 64,
        out_tile=64,
        channels=3,
        planes=11,
        passes=passes,
        parameters=parameters,
        flops_per_pass=flops_per_pass,
    )


def _report(quick: bool = False) -> BenchReport:
    machine = MachineInfo(
        cpu="Test CPU",
        logical_cores=2,
        physical_cores=2,
        memory_gib=8.0,
        os="Linux",
        python="3.11",
        packages={"torch": "2.13.0"},
        load_average=(1.0, 1.0, 1.0),
    )
    mm = MatmulReference("cpu", 512, 2, summarize([0.001, 0.001, 0.001]), backend="torch")  # 268.4 GFLOP/s
    common = dict(
        backend="torch",
        device="cpu",
        precision="fp32",
        peak_rss_bytes=300 * 2**20,
        peak_device_bytes=None,
        matmul_gflops_per_s=mm.gflops_per_s,
    )
    mfpi = ModelResult(
        workload=_workload(BenchModel.MFPINET, 1, 1000, 2_000_000_000),
        seconds=summarize([0.010, 0.011, 0.012]),
        **common,
    )
    residual = ModelResult(
        workload=_workload(BenchModel.MFPINET_RESIDUAL, 1, 1000, 2_000_000_000),
        seconds=summarize([0.0105, 0.0115, 0.0125]),
        **common,
    )
    deepz = ModelResult(
        workload=_workload(BenchModel.DEEPZ, 11, 9000, 4_000_000_000), seconds=summarize([0.20, 0.22, 0.24]), **common
    )
    return BenchReport(
        command="mfpi-bench --quick",
        created_utc="2026-01-01T00:00:00Z",
        settings={"tile": 32, "out_tile": 64, "planes": 11, "batch": 1, "runs": 3, "warmup": 1, "threads": 2},
        machine=machine,
        quick=quick,
        matmul=[mm],
        results=[mfpi, residual, deepz],
        speedups=[Ratio("torch", summarize([20.0, 20.0, 20.0]), 0.22 / 0.011)],
        residual=[Ratio("torch", summarize([1.03, 1.05, 1.04]), 0.0115 / 0.011)],
        skipped={"trt": "tensorrt is not installed"},
        pipeline=[
            PipelineResult(
                "torch",
                slide_side=256,
                tile=128,
                halo=32,
                batch=1,
                tiles=16,
                loop_seconds=4.0,
                total_seconds=5.0,
                engine_megavoxels_per_s_in_pipeline=2.7,
                bare_engine_megavoxels_per_s=3.0,
                end_to_end_megavoxels_per_s=0.5,
                halo_overhead=0.75,
            )
        ],
        variants=[
            Variant("torch", "fp32", "measured"),
            Variant(
                "openvino",
                "int8",
                "gate failed",
                "Deep-Z 41.3 dB < 45.0 dB",
                {
                    "mfpinet": GateFigure("int8", "openvino", 47.25, 45.0),
                    "deepz": GateFigure("int8", "", 41.3, 45.0, "failed at export"),
                },
            ),
            Variant("openvino", "bf16", "skipped", "this CPU has no bfloat16 arithmetic"),
        ],
        notes=["shared machine"],
    )


def test_rates_follow_from_the_measurements():
    r = _report().results[0]
    assert r.latency_ms.median == pytest.approx(11.0)
    assert r.gflops_per_s == pytest.approx(2.0 / 0.011)
    assert r.megavoxels_per_s == pytest.approx(11 * 64 * 64 / 0.011 / 1e6)
    assert r.matmul_share == pytest.approx(r.gflops_per_s / (2 * 512**3 / 0.001 / 1e9))
    assert _report().results[2].label == "Deep-Z x11" and _report().results[1].label == "MFPINet residual"


def test_json_shape():
    data = json.loads(to_json(_report()))
    for key in (
        "schema_version",
        "command",
        "settings",
        "machine",
        "matmul_reference",
        "results",
        "variants",
        "speedup",
        "residual_cost",
        "pipeline",
        "skipped_backends",
        "paper_table3",
        "notes",
        "quick",
    ):
        assert key in data
    (speedup,), (residual,) = data["speedup"], data["residual_cost"]
    assert (speedup["backend"], speedup["precision"], residual["backend"], residual["precision"]) == (
        "torch",
        "fp32",
        "torch",
        "fp32",
    )
    assert speedup["median"] == pytest.approx(20.0) and speedup["paper"] == pytest.approx(24.2)
    assert residual["extra_percent"] == pytest.approx(4.0)
    assert residual["ratio_of_median_latencies"] == pytest.approx(0.0115 / 0.011)
    assert [(v["backend"], v["precision"], v["status"]) for v in data["variants"]] == [
        ("torch", "fp32", "measured"),
        ("openvino", "int8", "gate failed"),
        ("openvino", "bf16", "skipped"),
    ]
    assert data["variants"][1]["accuracy"]["deepz"] == {
        "precision": "int8",
        "runtime": "",
        "min_psnr_db": 41.3,
        "threshold_db": 45.0,
        "method": "failed at export",
        "passed": False,
    }
    assert data["variants"][1]["accuracy"]["mfpinet"]["passed"] is True
    assert data["results"][0]["accuracy"] is None  # fp32 is the reference
    assert [r["model"] for r in data["results"]] == ["mfpinet", "mfpinet-residual", "deepz"]
    row = data["results"][2]
    for key in (
        "backend",
        "model",
        "parameters",
        "gflops_per_stack",
        "latency_ms",
        "throughput_megavoxels_per_s",
        "achieved_gflops_per_s",
        "matmul_share",
        "peak_host_rss_mib",
        "peak_device_mib",
        "passes_per_stack",
    ):
        assert key in row
    assert row["latency_ms"]["p90"] == pytest.approx(236.0)
    assert row["gflops_per_stack"] == pytest.approx(44.0) and row["passes_per_stack"] == 11
    assert row["input_shape"] == [1, 64, 64, 3] and row["output_shape"] == [1, 11, 64, 64, 3]
    pipe = data["pipeline"][0]
    assert pipe["efficiency"] == pytest.approx(0.9) and pipe["halo_overhead"] == 0.75
    assert pipe["engine_megavoxels_per_s_in_pipeline"] == 2.7 and pipe["end_to_end_megavoxels_per_s"] == 0.5
    assert data["matmul_reference"][0]["method"] == "torch.matmul"
    assert data["matmul_reference"][0]["seconds"]["median"] == pytest.approx(0.001)
    assert data["skipped_backends"] == {"trt": "tensorrt is not installed"}


def test_markdown_and_table_contents():
    md = to_markdown(_report(quick=True))
    assert md.startswith("# mfpi-bench")
    assert "QUICK MODE" in md
    assert "| backend | precision | model | params |" in md
    assert "## Speed-up of MFPINet over Deep-Z by backend and precision" in md and "24.2x" in md
    assert (
        "| torch | fp32 | 11.0 (10.2-11.8) | 4.10 | 220.0 | 20.0x (20.0-20.0) | reference | reference | measured |"
        in md
    )
    assert (
        "| openvino | int8 | - | - | - | - | 47.2 dB | 41.3 dB < 45 dB | gate failed: Deep-Z 41.3 dB < 45.0 dB |" in md
    )
    assert "| openvino | bf16 | - | - | - | - | - | - | skipped: this CPU has no bfloat16 arithmetic |" in md
    assert "## Extra cost of the residual form" in md and "| torch | fp32 | +4.0% | +3.2% to +4.8% | 1.045 |" in md
    assert "## Pipeline efficiency" in md and "| 90% |" in md and "Test CPU" in md
    assert md.count("\n| torch (cpu) | fp32 |") == 3 and md.count(" | reference |\n") == 3
    text = format_table(_report())
    assert "QUICK" not in text
    assert "Deep-Z x11" in text and "MFPINet residual" in text and "20.0x faster" in text
    assert "torch fp32: MFPINet residual costs +4.0% per stack over MFPINet" in text
    assert "gate failed: Deep-Z 41.3 dB < 45.0 dB" in text and "MFPINet gate" in text
    assert "torch.matmul, float32 512x512, 2 thread(s), interleaved with the torch rounds): 268.4 GFLOP/s" in text
    assert "= 90% efficiency" in text
    assert "skipped trt: tensorrt is not installed" in text


def test_empty_report_still_renders():
    report = _report()
    report.results, report.speedups, report.residual, report.pipeline, report.variants = [], [], [], [], []
    assert "skipped trt" in format_table(report) and "## Speed-up" not in to_markdown(report)


def test_chart_is_a_png(tmp_path):
    png = render_chart(_report())
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    path = save_chart(_report(), tmp_path / "sub" / "chart.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in path.parent.iterdir()] == ["chart.png"]  # no temporary left behind


def test_matmul_reference_is_a_rate():
    m = MatmulReference("cpu", 128, 1, summarize([0.002, 0.001, 0.003]))
    assert m.flops == 2 * 128**3
    assert m.gflops_per_s == pytest.approx(2 * 128**3 / 0.002 / 1e9)
    assert m.to_dict()["threads"] == 1 and m.to_dict()["gflops_per_s"] == pytest.approx(m.gflops_per_s)
