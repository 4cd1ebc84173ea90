"""export_model sources, atomic output folders, and the cached default engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.checkpoint import default as default_model
from mfpi_deploy.checkpoint import load_checkpoint
from mfpi_deploy.engine.cache import cache_key, cache_root
from mfpi_deploy.engine.manifest import EngineFolder
from mfpi_deploy.errors import CheckpointError, MfpiError
from mfpi_deploy.export import api, default_engine
from mfpi_deploy.export.api import cached_default_engine, export_model
from mfpi_deploy.export.onnx_export import Exporter
from mfpi_deploy.fileio import file_sha256
from mfpi_deploy.models import create_model
from tests.mfpi_deploy.export.engines import export_options, tiny_checkpoint

QUIET = {"log": lambda _: None}


def test_failed_export_leaves_no_folder(tmp_path, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)

    def broken(*args, **kwargs):
        raise MfpiError("parity check exploded")

    monkeypatch.setattr(api, "check_onnx_parity", broken)
    with pytest.raises(MfpiError, match="exploded"):
        export_model(ckpt, tmp_path / "out", export_options(exporter=Exporter.TORCHSCRIPT), **QUIET)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no out, no hidden temp folder


def test_failed_forced_export_keeps_the_old_folder(tmp_path, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    out = export_model(ckpt, tmp_path / "out", export_options(exporter=Exporter.TORCHSCRIPT), **QUIET)
    before = (out / "manifest.json").read_text()
    monkeypatch.setattr(api, "check_onnx_parity", lambda *a, **k: (_ for _ in ()).throw(MfpiError("boom")))
    with pytest.raises(MfpiError):
        export_model(ckpt, out, export_options(exporter=Exporter.TORCHSCRIPT, force=True), **QUIET)
    assert (out / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "out"]


def test_force_replaces_engine_folders_only(tmp_path, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    image, notes = tmp_path / "image.tif", tmp_path / "notes"
    image.write_bytes(b"a user's image")
    notes.mkdir()
    (notes / "thesis.txt").write_text("precious")
    opts = export_options(exporter=Exporter.TORCHSCRIPT, force=True)
    for target in (image, notes, ckpt):  # a file, a folder, a checkpoint folder: none is an engine
        with pytest.raises(MfpiError, match="not an engine folder"):
            export_model(ckpt, target, opts, **QUIET)
    monkeypatch.chdir(notes)
    for here in (".", ".."):
        with pytest.raises(MfpiError, match="the current folder is not replaced"):
            export_model(ckpt, here, opts, **QUIET)
    assert image.read_bytes() == b"a user's image" and (notes / "thesis.txt").read_text() == "precious"
    assert (ckpt / "model.safetensors").is_file()


def test_authors_pth_is_imported_and_copied(tmp_path):
    net = create_model("mfpinet", in_channels=3, width=4).eval()
    pth = tmp_path / "G_19_1519.pth"
    torch.save({"state_dict": net.state_dict()}, pth)
    out = export_model(pth, tmp_path / "out", export_options(exporter=Exporter.TORCHSCRIPT), **QUIET)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "reference" and manifest["source"]["sha256"] == file_sha256(pth)
    assert manifest["engine"]["channels"] == 3
    copied = load_checkpoint(out)
    for k, v in net.state_dict().items():
        assert torch.equal(copied.model.state_dict()[k], v)


def test_default_source_resolves_bundled_model(tmp_path, monkeypatch):
    monkeypatch.setattr(default_model, "DEFAULT_MODEL_DIR", tmp_path / "missing")
    with pytest.raises(CheckpointError, match="bundled default model is missing"):
        export_model("default", tmp_path / "out", export_options(), **QUIET)
    bundled = tiny_checkpoint(tmp_path / "bundled", width=4)
    monkeypatch.setattr(default_model, "DEFAULT_MODEL_DIR", bundled)
    out = export_model("default", tmp_path / "out", export_options(exporter=Exporter.TORCHSCRIPT), **QUIET)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "default" and manifest["source"]["path"] == str(bundled)


def test_cached_default_engine_exports_once(tmp_path, monkeypatch):
    bundled = tiny_checkpoint(tmp_path / "bundled", width=4)
    monkeypatch.setattr(default_model, "DEFAULT_MODEL_DIR", bundled)
    monkeypatch.setenv("MFPI_CACHE_DIR", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    logs: list[str] = []
    first = cached_default_engine(log=logs.append, int8=False)
    assert first.parent == tmp_path / "cache" / "engines" and any("first use" in m for m in logs)
    assert json.loads((first / "manifest.json").read_text())["source"]["sha256"] == file_sha256(
        bundled / "model.safetensors"
    )
    logs.clear()
    assert cached_default_engine(log=logs.append) == first and logs == []  # reused, nothing exported
    with open_backend("ort-cpu", first, threads=1, log=lambda _: None) as backend:
        out = backend.run(np.zeros((1, 16, 16, 1), np.uint8))
        assert out.shape == (1, 11, 32, 32, 1)
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]  # no temp folders
    good = (first / "model.onnx").read_bytes()
    (first / "model.onnx").write_bytes(good[: len(good) // 2])  # damaged in the cache: exported again
    logs.clear()
    assert cached_default_engine(log=logs.append, int8=False) == first
    assert any("is damaged" in m and "exporting it again" in m for m in logs), logs
    EngineFolder(first).verify_all()  # whole again: every file as its manifest records
    (tmp_path / "plain").mkdir()  # readable as any folder the user makes (Dask workers of other users read it)
    assert first.stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_cache_key_changes_with_weights_and_tools():
    tools = {"torch": "2.13.0", "onnx": "1.23"}
    key = cache_key("a" * 64, tools, 20)
    assert key == cache_key("a" * 64, dict(tools), 20)
    assert key != cache_key("b" * 64, tools, 20)
    assert key != cache_key("a" * 64, {**tools, "torch": "2.14.0"}, 20)
    assert key != cache_key("a" * 64, tools, 21)


def test_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("MFPI_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("MFPI_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "mfpi-deploy"


def test_options_accept_plain_values_and_refuse_bad_ones():
    from mfpi_deploy.export.api import ExportOptions

    opts = ExportOptions(exporter="torchscript", tiles=[256, 384], batches=[2], calibration=["a.tif"])
    assert opts.exporter is Exporter.TORCHSCRIPT and opts.tiles == (256, 384) and opts.batches == (2,)
    for bad, match in [
        ({"exporter": "jit"}, "unknown exporter"),
        ({"batches": (0,)}, "batch sizes must be positive"),
        ({"workspace_gb": 0}, "workspace must be positive"),
        ({"fp16_min_psnr": float("nan")}, "--min-psnr must be a number of dB, got nan"),  # was run, then failed
        ({"int8_min_psnr": float("inf")}, "--int8-min-psnr must be a number of dB"),
    ]:
        with pytest.raises(MfpiError, match=match):
            ExportOptions(**bad)


@pytest.mark.skipif(not default_engine.default_with_int8(), reason="OpenVINO is not installed")
def test_the_default_export_adds_int8_where_openvino_is_and_keeps_fp32_if_int8_fails_its_gate(tmp_path, monkeypatch):
    from mfpi_deploy.export import int8 as int8_module

    monkeypatch.setattr(default_model, "DEFAULT_MODEL_DIR", tiny_checkpoint(tmp_path / "bundled", width=8))
    monkeypatch.setattr(api.ExportOptions, "__init__", _small_and_quick(api.ExportOptions.__init__))
    torch.set_num_threads(1)
    folders = []
    for cache in ("with", "without"):
        monkeypatch.setenv("MFPI_CACHE_DIR", str(tmp_path / cache))
        logs: list[str] = []
        if cache == "without":  # the int8 variant fails its gate: dropped, said in the log, fp32 kept

            def failing(*args, **kwargs):
                raise int8_module.Int8GateError(
                    "int8 accuracy gate failed: lowest plane PSNR 30.0 dB < 45.0 dB",
                    min_psnr_db=30.0,
                    threshold_db=45.0,
                )

            monkeypatch.setattr(int8_module, "export_int8", failing)
        folders.append(cached_default_engine(log=logs.append))
        assert any("(fp32 and int8)" in m for m in logs)
        artifacts = json.loads((folders[-1] / "manifest.json").read_text())["artifacts"]
        assert "onnx" in artifacts and any("int8" in key for key in artifacts) == (cache == "with")
        assert any("the int8 variant failed its gate" in m for m in logs) == (cache == "without")
        assert sum(m.startswith("exporting mfpinet") for m in logs) == 1  # a failed int8 gate exports nothing again
    with open_backend("auto", folders[0], threads=1, log=lambda _: None) as backend:
        assert backend.run(np.zeros((1, 16, 16, 1), np.uint8)).shape == (1, 11, 32, 32, 1)  # tiny model: grey
    monkeypatch.setattr(default_engine, "default_with_int8", lambda: False)
    assert default_engine.default_engine_folder() != folders[-1]  # installing OpenVINO later exports again


def _small_and_quick(init):
    """ExportOptions with the TorchScript exporter and small gates, as the other export tests use."""

    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        for name, value in (("exporter", Exporter.TORCHSCRIPT), ("gate_tile", 64), ("gate_count", 2), ("threads", 1)):
            object.__setattr__(self, name, value)

    return patched
