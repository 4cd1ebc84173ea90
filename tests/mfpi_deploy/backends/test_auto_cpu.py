"""auto on a CPU: the fastest engine that passed its gate, by a cached probe; skipped ones say why."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

import mfpi_deploy.backends.select as select
from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.backends.probe import Candidate, ProbeCache, fastest, time_candidates
from mfpi_deploy.backends.select import CPU_CANDIDATES, choose_backend, open_backend, unavailable_reason
from mfpi_deploy.engine.precision import Precision
from mfpi_deploy.errors import MfpiError

OV_INT8, OV_FP32 = Candidate(BackendKind.OPENVINO, Precision.INT8), Candidate(BackendKind.OPENVINO, Precision.FP32)
ORT_INT8, ORT_FP32 = Candidate(BackendKind.ORT_CPU, Precision.INT8), Candidate(BackendKind.ORT_CPU, Precision.FP32)


class FakeTimer:
    """Stands in for time_candidates: fixed seconds per candidate, counts its calls."""

    def __init__(self, seconds: dict[Candidate, float]) -> None:
        self.seconds, self.calls, self.seen = seconds, 0, []

    def __call__(self, backends: dict) -> dict[Candidate, float]:
        self.calls += 1
        self.seen.append(sorted(c.name for c in backends))
        for backend in backends.values():
            assert backend.spec.precision in ("fp32", "int8", "bf16")  # really opened
        return {c: self.seconds[c] for c in backends}


@pytest.fixture
def no_openvino(monkeypatch):
    real = select.importlib.util.find_spec
    monkeypatch.setattr(select.importlib.util, "find_spec", lambda name: None if name == "openvino" else real(name))


def _no_gpu(monkeypatch):
    missing = select.runtime_missing
    monkeypatch.setattr(
        select, "runtime_missing", lambda kind: "no GPU here" if kind in select.GPU_ORDER else missing(kind)
    )


def test_auto_takes_the_fastest_measured_and_caches_it(mfpinet_engine, monkeypatch):
    pytest.importorskip("openvino")
    _no_gpu(monkeypatch)
    timer = FakeTimer(
        {
            OV_INT8: 0.05,
            ORT_INT8: 0.03,
            OV_FP32: 0.08,
            ORT_FP32: 0.09,
            Candidate(BackendKind.OPENVINO, Precision.BF16): 0.04,
        }
    )
    monkeypatch.setattr(select, "time_candidates", timer)
    logs: list[str] = []
    with open_backend("auto", mfpinet_engine, threads=1, log=logs.append) as backend:
        assert (backend.kind, backend.spec.precision) == (BackendKind.ORT_CPU, "int8")
    assert timer.calls == 1
    line = logs[0]
    listed = line.split("probe tiles: ")[1].split(";")[0]  # fastest first; bf16 only where the CPU has it
    assert line.startswith("backend: ort-cpu int8 (fastest of ") and listed.startswith("ort-cpu int8 30 ms, ")
    order = ["ort-cpu int8 30 ms", "openvino int8 50 ms", "openvino fp32 80 ms", "ort-cpu fp32 90 ms"]
    assert [listed.index(t) for t in order] == sorted(listed.index(t) for t in order)
    from mfpi_deploy.backends.openvino_backend import cpu_capabilities

    assert ("openvino bf16 40 ms" in listed) == ("BF16" in cpu_capabilities())
    assert "skipped trt: no GPU here; ort-cuda: no GPU here" in line
    # the second open reuses the measurement (cached per machine and engine under cache_root()/probe)
    logs.clear()
    with open_backend("auto", mfpinet_engine, threads=1, log=logs.append) as backend:
        assert backend.spec.precision == "int8"
    assert timer.calls == 1 and "measured earlier on this machine" in logs[0]
    # another thread count is another measurement
    with open_backend("auto", mfpinet_engine, threads=2, log=lambda _: None):
        pass
    assert timer.calls == 2


def test_precision_option_restricts_auto(mfpinet_engine, monkeypatch):
    pytest.importorskip("openvino")
    _no_gpu(monkeypatch)
    timer = FakeTimer({OV_INT8: 0.05, ORT_INT8: 0.07, OV_FP32: 0.01, ORT_FP32: 0.02})
    monkeypatch.setattr(select, "time_candidates", timer)
    with open_backend("auto", mfpinet_engine, threads=1, log=lambda _: None, precision="int8") as backend:
        assert (backend.kind, backend.spec.precision) == (BackendKind.OPENVINO, "int8")
    assert timer.seen == [["openvino int8", "ort-cpu int8"]]
    with open_backend("auto", mfpinet_engine, threads=1, log=lambda _: None, precision="fp32") as backend:
        assert (backend.kind, backend.spec.precision) == (BackendKind.OPENVINO, "fp32")


def test_without_measuring_auto_follows_the_documented_order(mfpinet_engine, monkeypatch):
    pytest.importorskip("openvino")
    _no_gpu(monkeypatch)
    monkeypatch.setattr(select, "time_candidates", lambda backends: pytest.fail("measured"))
    cand, skipped, how = choose_backend(mfpinet_engine, measure=False)
    assert cand == CPU_CANDIDATES[0] == OV_INT8 and how == "first in the documented order"


def test_probe_cache_round_trip_and_tie_break(tmp_path):
    cache = ProbeCache(tmp_path / "m.json")
    assert cache.get("e", [OV_INT8]) is None
    cache.put("e", {OV_INT8: 0.1, ORT_FP32: 0.2})
    assert cache.get("e", [ORT_FP32, OV_INT8]) == {OV_INT8: 0.1, ORT_FP32: 0.2}
    assert cache.get("e", [OV_INT8]) is None  # another set of candidates: measure again
    assert json.loads((tmp_path / "m.json").read_text()) == {"e": {"openvino int8": 0.1, "ort-cpu fp32": 0.2}}
    (tmp_path / "m.json").write_text("{broken")
    assert cache.get("e", [OV_INT8]) is None
    assert fastest({ORT_FP32: 0.1, OV_FP32: 0.1}, CPU_CANDIDATES) == OV_FP32  # tie: documented order


def test_time_candidates_interleaves_real_backends(mfpinet_engine):
    quiet = {"threads": 1, "log": lambda _: None}
    with (
        open_backend("ort-cpu", mfpinet_engine, **quiet) as a,
        open_backend("ort-cpu", mfpinet_engine, precision="int8", **quiet) as b,
    ):
        timings = time_candidates({ORT_FP32: a, ORT_INT8: b}, rounds=2, side=32)
    assert set(timings) == {ORT_FP32, ORT_INT8} and all(0 < s < 10 for s in timings.values())


def test_openvino_absent_auto_skips_it_with_the_reason(mfpinet_engine, monkeypatch, no_openvino):
    _no_gpu(monkeypatch)
    timer = FakeTimer({ORT_INT8: 0.02, ORT_FP32: 0.03})
    monkeypatch.setattr(select, "time_candidates", timer)
    logs: list[str] = []
    with open_backend("auto", mfpinet_engine, threads=1, log=logs.append) as backend:
        assert backend.kind is BackendKind.ORT_CPU and backend.spec.precision == "int8"
    assert "openvino: openvino is not installed (pip install '.[openvino]')" in logs[0]
    assert timer.seen == [["ort-cpu fp32", "ort-cpu int8"]]
    assert unavailable_reason(BackendKind.OPENVINO) == "openvino is not installed (pip install '.[openvino]')"
    with pytest.raises(MfpiError, match="backend openvino cannot run .*openvino is not installed"):
        open_backend("openvino", mfpinet_engine, log=lambda _: None)


def test_openvino_import_error_is_one_line(mfpinet_engine, monkeypatch):
    from mfpi_deploy.backends.openvino_backend import OpenVinoBackend

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(MfpiError, match=r"^OpenVINO is not installed \(pip install 'mfpi-deploy\[openvino\]'\)"):
        OpenVinoBackend(mfpinet_engine)


def test_a_variant_without_its_gate_on_that_runtime_is_skipped(mfpinet_engine, tmp_path, monkeypatch):
    """An int8 gate measured on onnxruntime only (openvino was not installed at export) keeps OpenVINO off it."""
    pytest.importorskip("openvino")
    _no_gpu(monkeypatch)
    folder = tmp_path / "engine"
    shutil.copytree(mfpinet_engine, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["accuracy"]["int8"]["runtimes"]["openvino"]
    manifest["accuracy"]["bf16"]["runtimes"]["openvino"]["min_psnr_db"] = 30.0  # below its 45 dB threshold
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert (
        "int8 accuracy gate was not measured on openvino (export again with openvino installed)"
        in unavailable_reason(BackendKind.OPENVINO, folder, "int8")
    )
    assert unavailable_reason(BackendKind.ORT_CPU, folder, "int8") is None
    assert "bf16 accuracy gate did not pass on openvino (30.0 dB)" in unavailable_reason(
        BackendKind.OPENVINO, folder, "bf16"
    )
    _, skipped, _ = choose_backend(folder, measure=False)
    assert any(s.startswith("openvino int8: its int8 accuracy gate was not measured") for s in skipped)
    with pytest.raises(MfpiError, match="backend openvino cannot run .* in int8: its int8 accuracy gate"):
        open_backend("openvino", folder, precision="int8", log=lambda _: None)


def test_no_cpu_engine_left_is_one_error(mfpinet_engine, monkeypatch, no_openvino):
    _no_gpu(monkeypatch)
    with pytest.raises(MfpiError, match="no backend can run .* in bf16: .*openvino: openvino is not installed") as err:
        open_backend("auto", mfpinet_engine, precision="bf16", log=lambda _: None)
    assert "\n" not in str(err.value)
