"""Report shape: JSON keys (with `speedup`), Markdown sections, terminal table, PNG chart."""
from __future__ import annotations

import json

import pytest

from mfpi_deploy.bench.chart import render_chart, save_chart
from mfpi_deploy.bench.machine import MachineInfo, cpu_model
from mfpi_deploy.bench.matmul import MatmulReference, matmul_runner
from mfpi_deploy.bench.report import (
    BenchReport,
    ModelResult,
    PipelineResult,
    Speedup,
    format_table,
    to_json,
    to_markdown,
)
from mfpi_deploy.bench.stats import summarize


def _report(quick: bool = False) -> BenchReport:
    machine = MachineInfo(cpu="Test CPU", logical_cores=2, physical_cores=2, memory_gib=8.0, os="Linux",
                          python="3.11", packages={"torch": "2.13.0"}, load_average=(1.0, 1.0, 1.0))
    mm = MatmulReference("cpu", 512, 2, summarize([0.001, 0.001, 0.001]))  # 268.4 GFLOP/s
    common = dict(backend="torch", device="cpu", precision="fp32", input_shape=(1, 32, 32, 3),
                  output_shape=(1, 11, 64, 64, 3), output_voxels=11 * 64 * 64, peak_rss_bytes=300 * 2**20,
                  peak_device_bytes=None, matmul_gflops_per_s=mm.gflops_per_s)
    mfpi = ModelResult(model="mfpinet", passes=1, parameters=1000, flops=2_000_000_000,
                       seconds=summarize([0.010, 0.011, 0.012]), **common)
    deepz = ModelResult(model="deepz", passes=11, parameters=9000, flops=44_000_000_000,
                        seconds=summarize([0.20, 0.22, 0.24]), **common)
    return BenchReport(
        command="mfpi-bench --quick", created_utc="2026-01-01T00:00:00Z",
        settings={"tile": 32, "out_tile": 64, "planes": 11, "batch": 1, "runs": 3, "warmup": 1, "threads": 2},
        machine=machine, quick=quick, matmul=[mm], results=[mfpi, deepz],
        speedups=[Speedup("torch", summarize([20.0, 20.0, 20.0]), 0.22 / 0.011)],
        skipped={"trt": "tensorrt is not installed"},
        pipeline=[PipelineResult("torch", slide_side=256, tile=128, halo=32, batch=1, tiles=16, loop_seconds=4.0,
                                 total_seconds=5.0, engine_megavoxels_per_s_in_pipeline=2.7,
                                 bare_engine_megavoxels_per_s=3.0, end_to_end_megavoxels_per_s=0.5,
                                 halo_overhead=0.75)],
        notes=["shared machine"],
    )


def test_rates_follow_from_the_measurements():
    r = _report().results[0]
    assert r.latency_ms.median == pytest.approx(11.0)
    assert r.gflops_per_s == pytest.approx(2.0 / 0.011)
    assert r.megavoxels_per_s == pytest.approx(11 * 64 * 64 / 0.011 / 1e6)
    assert r.matmul_share == pytest.approx(r.gflops_per_s / (2 * 512**3 / 0.001 / 1e9))


def test_json_shape():
    data = json.loads(to_json(_report()))
    for key in ("schema_version", "command", "settings", "machine", "matmul_reference", "results",
                "speedup", "pipeline", "skipped_backends", "paper_table3", "notes", "quick"):
        assert key in data
    assert data["speedup"]["torch"]["median"] == pytest.approx(20.0)
    assert data["speedup"]["torch"]["paper"] == pytest.approx(24.2)
    row = data["results"][1]
    for key in ("backend", "model", "parameters", "gflops_per_stack", "latency_ms", "throughput_megavoxels_per_s",
                "achieved_gflops_per_s", "matmul_share", "peak_host_rss_mib", "peak_device_mib", "passes_per_stack"):
        assert key in row
    assert row["latency_ms"]["p90"] == pytest.approx(236.0)
    pipe = data["pipeline"][0]
    assert pipe["efficiency"] == pytest.approx(0.9) and pipe["halo_overhead"] == 0.75
    assert pipe["engine_megavoxels_per_s_in_pipeline"] == 2.7 and pipe["end_to_end_megavoxels_per_s"] == 0.5
    assert data["skipped_backends"] == {"trt": "tensorrt is not installed"}


def test_markdown_and_table_contents():
    md = to_markdown(_report(quick=True))
    assert md.startswith("# mfpi-bench")
    assert "QUICK MODE" in md
    assert "| backend | model | params |" in md
    assert "| torch | 20.0x |" in md and "24.2x" in md
    assert "## Pipeline efficiency" in md and "| 90% |" in md and "Test CPU" in md
    assert md.count("\n| torch (cpu, fp32) |") == 2
    text = format_table(_report())
    assert "QUICK" not in text
    assert "Deep-Z x11" in text and "MFPINet" in text and "20.0x faster" in text
    assert "= 90% efficiency" in text
    assert "skipped trt: tensorrt is not installed" in text


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
    assert m.to_dict()["threads"] == 1 and m.to_dict()["method"] == "torch.matmul"
    assert m.to_dict()["gflops_per_s"] == pytest.approx(m.gflops_per_s)


def test_matmul_runner_computes_the_seeded_product():
    import torch

    threads = torch.get_num_threads()
    try:
        run = matmul_runner(64, "cpu", threads=1)
        assert torch.get_num_threads() == 1  # the reference runs on the benchmark's threads
    finally:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(64, 64, generator=gen), torch.rand(64, 64, generator=gen)
    got = run()
    assert got.shape == (64, 64) and got.dtype == torch.float32
    torch.testing.assert_close(got, a @ b)


def test_cpu_model_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Fancy CPU 9000\n")
    assert cpu_model(info) == "Fancy CPU 9000"
    assert cpu_model(tmp_path / "missing")  # falls back to something non-empty


def test_cpu_details_from_cpuinfo(tmp_path):
    from mfpi_deploy.bench.machine import cpu_details

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                    "flags\t\t: fpu avx2 fma avx512f hypervisor\n\nprocessor\t: 1\nflags\t\t: sse\n")
    assert cpu_details(info) == (["avx2", "fma", "avx512f"], "AuthenticAMD family 25 model 17", True)
    assert cpu_details(tmp_path / "missing") == ([], "", None)
