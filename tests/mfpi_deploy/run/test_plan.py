"""run.plan: the codec a run chooses from the output format and the options."""

from __future__ import annotations

import pytest

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.layout import OutputFormat
from mfpi_deploy.run import RunOptions
from mfpi_deploy.run.plan import choose_codec


def test_the_named_codec_without_a_level_is_the_default_itself() -> None:
    default = choose_codec(OutputFormat.OME_TIFF, RunOptions())
    assert default.label == "jpeg:85"  # README's default, measured in benchmarks/run/results/codecs.md
    assert choose_codec(OutputFormat.OME_TIFF, RunOptions(compression="jpeg")) == default
    assert choose_codec(OutputFormat.OME_TIFF, RunOptions(lossless=True)).lossless
    assert choose_codec(OutputFormat.OME_ZARR, RunOptions()).label == "zstd:3"
    with pytest.raises(MfpiError, match="--lossless contradicts --compression jpeg:85"):
        RunOptions(compression="jpeg", lossless=True)  # refused with the options, before any slide or engine
