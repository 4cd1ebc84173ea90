"""Where the bundled model's export is cached: a folder keyed by its weights, the tool versions, the
opset and whether it holds the int8 variant (exported where OpenVINO, the runtime that makes int8
fast on CPUs, is installed). Torch-free, so `mfpi-run` without --engine finds an existing export
without loading torch."""

from __future__ import annotations

from pathlib import Path

from mfpi_deploy.checkpoint import default as default_model
from mfpi_deploy.checkpoint.card import WEIGHTS_NAME
from mfpi_deploy.engine.cache import cache_key, cache_root
from mfpi_deploy.engine.manifest import MANIFEST_NAME
from mfpi_deploy.engine.precision import openvino_installed
from mfpi_deploy.export.versions import DEFAULT_OPSET, tool_versions
from mfpi_deploy.fileio import file_sha256

__all__ = ["default_engine_folder", "default_with_int8", "exported_default_engine"]


def default_with_int8() -> bool:
    """Whether the first use exports the int8 variant too: where OpenVINO is installed (a user who
    installed the fast CPU runtime gets its fast variant; `auto` then times it against fp32)."""
    return openvino_installed()


def default_engine_folder() -> Path:
    """The cache folder of the bundled model's export (whether or not it exists yet)."""
    folder = default_model.resolve_checkpoint(default_model.DEFAULT_NAME)
    key = cache_key(
        file_sha256(folder / WEIGHTS_NAME), tool_versions(), DEFAULT_OPSET, ("int8",) if default_with_int8() else ()
    )
    return cache_root() / "engines" / f"default-{key}"


def exported_default_engine() -> Path | None:
    """That folder if the export is complete there (its manifest is written last), else None."""
    target = default_engine_folder()
    return target if (target / MANIFEST_NAME).is_file() else None
