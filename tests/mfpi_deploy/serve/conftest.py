"""A tiny RGB slide, the tiny torch model of the run tests, and servers over them (in-process ASGI)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mfpi_deploy.infer import predict_image
from mfpi_deploy.serve.app import create_app
from mfpi_deploy.serve.config import ServeConfig
from mfpi_deploy.serve.server import SlideServer, open_server
from tests.mfpi_deploy.run.helpers import textured, tiny_backend, write_tiff

SLIDE_SHAPE = (300, 340)  # input pixels: 3 x 3 engine tiles of the tiny model's plan (128 px cores, batches of 2)
BASE_URL = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory):
    with tiny_backend(tmp_path_factory.mktemp("model")) as be:
        yield be


@pytest.fixture(scope="module")
def slide_image() -> np.ndarray:
    return textured(*SLIDE_SHAPE)


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory, slide_image: np.ndarray) -> Path:
    return write_tiff(tmp_path_factory.mktemp("slides") / "cells.tif", slide_image, pixel_size_um=0.5)


@pytest.fixture(scope="module")
def reference(slide_image: np.ndarray, backend) -> np.ndarray:
    """What mfpi-run writes for the slide: the tiled inference of the whole image, (11, 2H, 2W, 3)."""
    return predict_image(slide_image, backend)


def batch_mates(server: SlideServer, name: str, indices: list[int]) -> set[int]:
    """The engine tiles computed for `indices`: all tiles of their batches in mfpi-run's plan."""
    run = server.slides[name].live.run
    return {i for b in {j // run.batch for j in indices} for i in run.groups[b]}


def make_server(paths: list[Path], backend, **config) -> SlideServer:
    return open_server(paths, ServeConfig(**config), lambda: backend, log=lambda _: None)


def client(server: SlideServer, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's note about httpx
        from starlette.testclient import TestClient

        return TestClient(create_app(server), base_url=kwargs.pop("base_url", BASE_URL), **kwargs)


@pytest.fixture
def live(slide_path: Path, backend) -> Iterator[SlideServer]:
    server = make_server([slide_path], backend)
    try:
        yield server
    finally:
        server.close()
