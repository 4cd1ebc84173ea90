"""Backend selection: auto skips what cannot run (saying why); a named impossible backend is an error.
Engines: exported once per benchmark shape with the real ExportOptions, and reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfpi_deploy.backends import select
from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.bench import engines
from mfpi_deploy.bench.engines import EngineRequest, engine_device, engine_folder, select_backends
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export.api import ExportOptions


def _only(monkeypatch, *available: BackendKind) -> None:
    monkeypatch.setattr(select, "runtime_missing", lambda kind: None if kind in available else f"no {kind.value} here")


def test_auto_runs_available_and_lists_skipped(monkeypatch):
    _only(monkeypatch, BackendKind.ORT_CPU, BackendKind.TORCH)
    assert select_backends(()) == (
        [BackendKind.ORT_CPU, BackendKind.TORCH],
        {"trt": "no trt here", "ort-cuda": "no ort-cuda here", "openvino": "no openvino here"},
    )
    _only(monkeypatch, BackendKind.TORCH, BackendKind.TRT)
    assert select_backends(("auto",))[0] == [BackendKind.TRT, BackendKind.TORCH]  # fastest first


def test_named_backends_must_be_available(monkeypatch):
    _only(monkeypatch, BackendKind.TORCH)
    assert select_backends(("torch", "torch")) == ([BackendKind.TORCH], {})
    with pytest.raises(MfpiError, match="backend trt is not available here: no trt here"):
        select_backends(("torch", "trt"))
    with pytest.raises(MfpiError, match="unknown backend kind 'cuda'"):
        select_backends(("cuda",))
    with pytest.raises(MfpiError, match="cannot be combined"):
        select_backends(("auto", "torch"))


def test_real_probe_on_this_machine():
    chosen, skipped = select_backends(())
    assert BackendKind.TORCH in chosen
    assert all(skipped.values())  # each skipped backend says why, e.g. "tensorrt is not installed"
    assert {k.value for k in chosen} | set(skipped) == {"trt", "ort-cuda", "openvino", "ort-cpu", "torch"}


def test_engine_device():
    assert engine_device(BackendKind.ORT_CPU) == engine_device(BackendKind.OPENVINO) == "cpu"
    assert engine_device(BackendKind.TRT) == engine_device(BackendKind.ORT_CUDA) == "cuda"
    assert engine_device(BackendKind.TORCH) in ("cpu", "cuda")


def test_engine_folder_exports_once_with_the_benchmark_shape(tmp_path, monkeypatch):
    """The adapter to mfpi_deploy.export: tile/batch/precision/threads passed on, folder reused next time."""
    calls = []

    def export_model(source, out_dir, options, *, log=print):
        calls.append((source, Path(out_dir).name, options))
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "manifest.json").write_text("{}")
        return Path(out_dir)

    monkeypatch.setattr(engines, "export_model", export_model)
    source = tmp_path / "deepz-random"
    source.mkdir()
    req = EngineRequest(BackendKind.TRT, source, tile=768, batch=2, fp16=True, threads=1)
    first = engine_folder(req, tmp_path, log=lambda m: None)
    again = engine_folder(req, tmp_path, log=lambda m: None)
    assert first == again == tmp_path / "deepz-random-trt-fp16-768-b2"
    assert calls == [
        (
            source,
            "deepz-random-trt-fp16-768-b2",
            ExportOptions(fp16=True, trt=True, tiles=(768,), batches=(2,), threads=1),
        )
    ]
    # An engine folder given as the source is used as it is.
    assert engine_folder(EngineRequest(BackendKind.ORT_CPU, first, 768, 2), tmp_path, log=print) == first
