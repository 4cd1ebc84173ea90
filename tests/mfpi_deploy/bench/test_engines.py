"""Backend selection: auto skips what cannot run (saying why); a named impossible backend is an error."""
from __future__ import annotations

import pytest

from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.bench.engines import Availability, probe, select_backends
from mfpi_deploy.errors import MfpiError


def _fake(available: set[BackendKind]):
    return lambda kind: Availability(kind, kind in available, "" if kind in available else f"no {kind.value} here")


def test_auto_runs_available_and_lists_skipped():
    chosen, skipped = select_backends((), _fake({BackendKind.ORT_CPU, BackendKind.TORCH}))
    assert chosen == [BackendKind.ORT_CPU, BackendKind.TORCH]
    assert {a.kind: a.reason for a in skipped} == {BackendKind.TRT: "no trt here",
                                                   BackendKind.ORT_CUDA: "no ort-cuda here"}
    assert select_backends(("auto",), _fake({BackendKind.TORCH}))[0] == [BackendKind.TORCH]


def test_named_backends_must_be_available():
    assert select_backends(("torch", "torch"), _fake({BackendKind.TORCH})) == ([BackendKind.TORCH], [])
    with pytest.raises(MfpiError, match="backend trt is not available here: no trt here"):
        select_backends(("torch", "trt"), _fake({BackendKind.TORCH}))
    with pytest.raises(MfpiError, match="unknown backend kind 'cuda'"):
        select_backends(("cuda",), _fake(set()))
    with pytest.raises(MfpiError, match="cannot be combined"):
        select_backends(("auto", "torch"), _fake({BackendKind.TORCH}))


def test_real_probe_on_this_machine():
    assert probe(BackendKind.TORCH).available
    trt = probe(BackendKind.TRT)
    if not trt.available:
        assert trt.reason  # says why, e.g. "tensorrt is not installed"


def test_engine_folder_exports_once_with_the_benchmark_shape(tmp_path, monkeypatch):
    """The adapter to mfpi_deploy.export: tile/batch/precision passed on, folder reused next time."""
    import dataclasses
    import types
    from pathlib import Path

    from mfpi_deploy.bench import engines

    calls = []

    @dataclasses.dataclass(frozen=True)
    class Options:  # a subset of ExportOptions' fields: unknown ones must not be passed
        fp16: bool = False
        trt: bool = False
        tiles: tuple = (384,)
        batches: tuple = (1, 4)

    def export_model(source, out_dir, options, *, log=print):
        calls.append((source, Path(out_dir).name, options))
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "manifest.json").write_text("{}")
        return Path(out_dir)

    fake = types.SimpleNamespace(ExportOptions=Options, export_model=export_model)
    monkeypatch.setattr(engines.importlib, "import_module", lambda name: fake)
    source = tmp_path / "deepz-random"
    source.mkdir()
    req = engines.EngineRequest(BackendKind.TRT, source, tile=768, batch=2, fp16=True, threads=1)
    first = engines.engine_folder(req, tmp_path, log=lambda m: None)
    again = engines.engine_folder(req, tmp_path, log=lambda m: None)
    assert first == again == tmp_path / "deepz-random-trt-fp16-768-b2"
    assert calls == [(str(source), "deepz-random-trt-fp16-768-b2",
                      Options(fp16=True, trt=True, tiles=(768,), batches=(2,)))]
    # An engine folder given as the source is used as it is.
    assert engines.engine_folder(engines.EngineRequest(BackendKind.ORT_CPU, first, 768, 2), tmp_path,
                                 log=print) == first
