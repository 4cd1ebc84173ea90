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
    with pytest.raises(MfpiError, match="unknown backend 'cuda'"):
        select_backends(("cuda",), _fake(set()))
    with pytest.raises(MfpiError, match="cannot be combined"):
        select_backends(("auto", "torch"), _fake({BackendKind.TORCH}))


def test_real_probe_on_this_machine():
    assert probe(BackendKind.TORCH).available
    trt = probe(BackendKind.TRT)
    if not trt.available:
        assert trt.reason  # says why, e.g. "tensorrt is not installed"
