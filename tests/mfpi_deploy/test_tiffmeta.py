"""Physical sizes from the metadata a TIFF carries (OME-XML with units, Aperio SVS descriptions)."""

from __future__ import annotations

import pytest

from mfpi_deploy.tiffmeta import ome_pixel_size_um, svs_pixel_size_um


def test_metadata_parsers() -> None:
    ome = (
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image><Pixels '
        'PhysicalSizeX="0.000325" PhysicalSizeXUnit="mm"/></Image></OME>'
    )
    assert ome_pixel_size_um(ome) == pytest.approx(0.325)
    assert svs_pixel_size_um("Aperio Image Library v1\r\nx|MPP = 0.2520|AppMag = 40") == pytest.approx(0.252)
    assert svs_pixel_size_um("no aperio here") is None
