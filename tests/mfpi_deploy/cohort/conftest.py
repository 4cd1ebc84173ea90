"""A LocalCluster of 2 worker processes shared by the Dask tests (started once: workers import torch)."""

from __future__ import annotations

import contextlib
import importlib
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.mfpi_deploy.run.helpers import tiny_checkpoint

RETRIES = 1  # a task may crash its worker once; the second crash fails it


@pytest.fixture(scope="session")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": RETRIES}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster)
    client.run(_warm_up)  # workers import torch and the task code once, here rather than in the first test
    yield SimpleNamespace(address=cluster.scheduler_address, client=client)
    logging.getLogger("distributed.nanny").setLevel(logging.ERROR)  # idle workers killed at the end: no warning
    with contextlib.suppress(Exception):
        client.close()
        cluster.close()


def _warm_up() -> None:
    for module in ("mfpi_deploy.backends.torch_backend", "mfpi_deploy.cohort.dask_worker"):
        importlib.import_module(module)


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("cohort-ckpt") / "ckpt")


def engine_args(ckpt: Path) -> list[str]:
    """mfpi-run options of every test here: the tiny torch model, small tiles, 2 tiles a batch."""
    return [
        "--engine",
        str(ckpt),
        "--backend",
        "torch",
        "--threads",
        "1",
        "--quiet",
        "--tile",
        "96",
        "--halo",
        "16",
        "--batch",
        "2",
    ]


def tree_bytes(path: Path) -> dict[str, bytes]:
    """Every file of an output (a file, or a folder such as an OME-Zarr) by relative path."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
