"""What this package reads from TIFF files besides their pixels, for the slides it reads (`slide`)
and the stacks it writes (`output`) alike: physical sizes from the metadata a file carries
(OME-XML, SVS, TIFF resolution, ImageJ), and tifffile's log messages collected instead of printed.
"""

from __future__ import annotations

import contextlib
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

# Micrometres per unit, for OME units and ImageJ unit names.
_UNIT_UM = {
    "pm": 1e-6,
    "nm": 1e-3,
    "µm": 1.0,
    "um": 1.0,
    "\u03bcm": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
    "in": 25400.0,
    "inch": 25400.0,
}
STEP_UNIT = "reference frame"  # OME's unit for positions without a physical size: mfpi-run's plane steps
_RESOLUTION_UNIT_UM = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}  # inch, cm, mm, um


def unit_to_um(unit: str | None) -> float | None:
    if unit is None:
        return 1.0
    return _UNIT_UM.get(unit.strip().lower().replace("\\u00b5", "µ"))


@dataclass(frozen=True)
class OmeInfo:
    """What this package reads from OME-XML: the first image's lateral pixel size and z positions, in µm."""

    pixel_size_um: float | None = None
    planes_um: list[float] | None = None  # z of each plane (TheZ order), from PositionZ or PhysicalSizeZ
    z_in_steps: bool = False  # planes_um are plane steps: every PositionZ is in STEP_UNIT


def read_ome(ome_xml: str | None, image: int = 0) -> OmeInfo:
    """Pixel size and plane positions of Image number `image` in OME-XML, units converted to µm.

    Plane z positions come from the Plane elements' PositionZ (with PositionZUnit), else from
    PhysicalSizeZ (with its unit) centred on the middle plane. Missing or unreadable XML gives
    an empty OmeInfo.
    """
    if not ome_xml:
        return OmeInfo()
    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError:
        return OmeInfo()
    all_pixels = [el for el in root.iter() if el.tag.endswith("}Pixels") or el.tag == "Pixels"]
    pixels = all_pixels[image] if 0 <= image < len(all_pixels) else None
    if pixels is None:
        return OmeInfo()
    planes, in_steps = _plane_positions(pixels)
    return OmeInfo(_length_um(pixels, "PhysicalSizeX"), planes, z_in_steps=in_steps)


def _length_um(el: ET.Element, name: str, unit_name: str | None = None) -> float | None:
    value = el.get(name)
    if value is None:
        return None
    scale = unit_to_um(el.get(unit_name or name + "Unit"))
    try:
        return float(value) * scale if scale else None
    except ValueError:
        return None


def _plane_positions(pixels: ET.Element) -> tuple[list[float] | None, bool]:
    """z of each plane (TheZ order) and whether they are plane steps: the Plane elements'
    PositionZ in µm (any length unit), else theirs in STEP_UNIT (mfpi-run's outputs of a model
    whose stack had no z spacing: plane steps), else PhysicalSizeZ centred on the middle plane."""
    found: dict[bool, dict[int, float]] = {False: {}, True: {}}  # in steps -> TheZ -> z
    for el in pixels:
        if el.tag.endswith("Plane") and el.get("PositionZ") is not None:
            steps = el.get("PositionZUnit") == STEP_UNIT
            z = _length_um(el, "PositionZ") if not steps else _float(el.get("PositionZ"))
            if z is not None:
                found[steps].setdefault(int(el.get("TheZ", 0)), z)
    for steps in (False, True):
        zs = found[steps]
        if zs:
            return [round(zs[k], 4) for k in sorted(zs)], steps
    dz = _length_um(pixels, "PhysicalSizeZ")
    n = int(pixels.get("SizeZ", 0) or 0)
    if dz and n > 1:
        return [round((i - (n - 1) / 2) * dz, 4) for i in range(n)], False
    return None, False


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def ome_pixel_size_um(ome_xml: str | None, image: int = 0) -> float | None:
    """PhysicalSizeX of Image number `image` (default the first) in OME-XML, in micrometres (unit default: µm)."""
    size = read_ome(ome_xml, image).pixel_size_um
    return _positive(size) if size is not None else None


def svs_pixel_size_um(description: str | None) -> float | None:
    """MPP from an Aperio SVS ImageDescription ('... |MPP = 0.2520|...')."""
    if not description or not description.startswith("Aperio"):
        return None
    match = re.search(r"\|\s*MPP\s*=\s*([0-9.eE+-]+)", description)
    return _positive(float(match.group(1))) if match else None


def resolution_pixel_size_um(x_resolution: tuple[int, int] | None, unit: int | None) -> float | None:
    """Pixel size from XResolution (pixels per unit) and ResolutionUnit (2 inch, 3 cm)."""
    if not x_resolution or unit not in _RESOLUTION_UNIT_UM:
        return None
    num, den = x_resolution
    if num <= 0 or den <= 0:
        return None
    return _positive(_RESOLUTION_UNIT_UM[unit] * den / num)


def imagej_pixel_size_um(x_resolution: tuple[int, int] | None, imagej: dict | None) -> float | None:
    """ImageJ files keep the unit in their description and the resolution in XResolution."""
    if not imagej or not x_resolution:
        return None
    scale = unit_to_um(imagej.get("unit"))
    num, den = x_resolution
    if not scale or num <= 0 or den <= 0 or "unit" not in imagej:
        return None
    return _positive(scale * den / num)


def _positive(value: float) -> float | None:
    return value if value > 0 and value == value else None


@contextlib.contextmanager
def tifffile_messages() -> Iterator[list[str]]:
    """Collect what tifffile logs (instead of printing it) while the block runs."""
    log = logging.getLogger("tifffile")
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = _Collect(logging.WARNING)
    propagate = log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        yield messages
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
