"""The slides of a cohort: paths, globs, folders or a CSV/TSV manifest -> one SlideJob per slide.

A manifest has an `input` column and optionally `output`, `region` (x,y,w,h, quoted in a
CSV), `level`, `pixel_size` (µm), `input_max` and `convert_channels`; empty cells take the
command's options. Relative paths are relative to the manifest's folder.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.layout import OutputFormat
from mfpi_deploy.run.options import RunOptions
from mfpi_deploy.slide.openslide_slide import OPENSLIDE_SUFFIXES
from mfpi_deploy.slide.source import Region

MANIFEST_SUFFIXES = (".csv", ".tsv")
SLIDE_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".svs", *OPENSLIDE_SUFFIXES)
OUTPUT_MARK = ".mfp"  # default outputs are <name>.mfp.ome.tif: never taken as inputs from folders or globs
SUFFIX_OF = {OutputFormat.OME_TIFF: ".ome.tif", OutputFormat.OME_ZARR: ".ome.zarr"}
COLUMNS = ("input", "output", "region", "level", "pixel_size", "input_max", "convert_channels")
_GLOB_CHARS = set("*?[")
_TRUE, _FALSE = {"1", "true", "yes", "y"}, {"0", "false", "no", "n"}


def slide_stem(slide: Path) -> str:
    """The slide's name without its image suffixes (.ome.tif, .tif, .svs, ...)."""
    name = slide.name
    for suffix in SLIDE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return slide.stem


def default_output(slide: Path, fmt: OutputFormat = OutputFormat.OME_TIFF, folder: Path | None = None) -> Path:
    """`<name>.mfp.ome.tif` (or .ome.zarr) next to the input, or in `folder`."""
    return (folder or slide.parent) / f"{slide_stem(slide)}{OUTPUT_MARK}{SUFFIX_OF[fmt]}"


@dataclass(frozen=True)
class SlideOverrides:
    """A manifest row's own options; None keeps the command's."""

    level: int | None = None
    region: Region | None = None
    pixel_size_um: float | None = None
    input_max: int | None = None
    convert_channels: bool | None = None

    def __post_init__(self) -> None:
        if self.level is not None and self.level < 0:
            raise MfpiError(f"level must be >= 0, got {self.level}")
        if self.pixel_size_um is not None and not self.pixel_size_um > 0:
            raise MfpiError(f"pixel size must be > 0 µm, got {self.pixel_size_um}")
        if self.input_max is not None and not 1 <= self.input_max <= 65535:
            raise MfpiError(f"input_max must be 1..65535, got {self.input_max}")

    def apply(self, options: RunOptions) -> RunOptions:
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}
        return dataclasses.replace(options, **given)


@dataclass(frozen=True)
class SlideJob:
    """One slide of a cohort: where it is, where its stack goes, and its own options."""

    input: Path
    output: Path
    overrides: SlideOverrides = SlideOverrides()

    def __post_init__(self) -> None:
        OutputFormat.from_path(self.output)  # refuses a name that is neither .ome.tif nor .ome.zarr

    @property
    def name(self) -> str:
        return self.input.name


def is_cohort(args: Sequence[str | Path]) -> bool:
    """Several slides, a glob, a folder or a manifest (rather than one slide file)."""
    if len(args) != 1:
        return True
    arg = str(args[0])
    return bool(_GLOB_CHARS & set(arg)) or Path(arg).is_dir() or arg.lower().endswith(MANIFEST_SUFFIXES)


def collect_jobs(
    args: Sequence[str | Path], *, folder: Path | None = None, fmt: OutputFormat = OutputFormat.OME_TIFF
) -> list[SlideJob]:
    """The cohort's slides in the order given (globs and folders sorted by name); outputs go to
    `folder` (default: next to each slide) unless a manifest names them."""
    jobs: list[SlideJob] = []
    for raw in args:
        arg = str(raw)
        path = Path(arg)
        if arg.lower().endswith(MANIFEST_SUFFIXES) and path.is_file():
            jobs.extend(read_manifest(path, folder=folder, fmt=fmt))
        elif _GLOB_CHARS & set(arg):
            found = [Path(p) for p in sorted(glob.glob(arg)) if Path(p).is_file() and _is_input(Path(p))]
            if not found:
                raise MfpiError(f"no slide matches {arg}")
            jobs.extend(SlideJob(p, default_output(p, fmt, folder)) for p in found)
        elif path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and _is_input(p) and p.name.lower().endswith(SLIDE_SUFFIXES)
            )
            if not found:
                raise MfpiError(f"{path}: no slides in this folder (looked for {', '.join(SLIDE_SUFFIXES)})")
            jobs.extend(SlideJob(p, default_output(p, fmt, folder)) for p in found)
        else:  # a missing file is kept: the cohort records it as failed, with its reason
            jobs.append(SlideJob(path, default_output(path, fmt, folder)))
    outputs = {job.output.resolve() for job in jobs}
    jobs = [job for job in jobs if job.input.resolve() not in outputs]  # an earlier run's output is no input
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = job.output.resolve()
        if key in seen:
            raise MfpiError(f"{seen[key]} and {job.input} would both write {job.output}; name outputs in a manifest")
        seen[key] = job.input
    if not jobs:
        raise MfpiError("no slides to run")
    return jobs


def _is_input(path: Path) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and f"{OUTPUT_MARK}.ome." not in name


def read_manifest(
    path: Path, *, folder: Path | None = None, fmt: OutputFormat = OutputFormat.OME_TIFF
) -> list[SlideJob]:
    """Jobs from a CSV (comma) or TSV (tab) manifest with a header row."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    base = path.parent
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MfpiError(f"{path}: cannot read the manifest ({exc})") from None
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    header = [h.strip() for h in reader.fieldnames or []]
    if "input" not in header:
        raise MfpiError(f"{path}: a manifest needs an 'input' column (columns: {', '.join(COLUMNS)})")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise MfpiError(f"{path}: unknown column(s) {', '.join(unknown)} (known: {', '.join(COLUMNS)})")
    jobs = []
    for line, row in enumerate(reader, start=2):
        cells = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if not cells.get("input") or cells["input"].startswith("#"):
            continue
        where = f"{path}:{line}"
        try:
            slide = _relative(cells["input"], base)
            output = _relative(cells["output"], base) if cells.get("output") else default_output(slide, fmt, folder)
            jobs.append(SlideJob(slide, output, _overrides(cells)))
        except MfpiError as exc:
            raise MfpiError(f"{where}: {exc}") from None
    return jobs


def _relative(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _overrides(cells: dict[str, str]) -> SlideOverrides:
    def number(name: str, kind: type) -> int | float | None:
        value = cells.get(name, "")
        if not value:
            return None
        try:
            return kind(value)
        except ValueError:
            raise MfpiError(f"{name} must be a number, got {value!r}") from None

    flag = cells.get("convert_channels", "").lower()
    if flag and flag not in _TRUE | _FALSE:
        raise MfpiError(f"convert_channels must be true or false, got {flag!r}")
    return SlideOverrides(
        level=number("level", int),
        region=Region.parse(cells["region"]) if cells.get("region") else None,
        pixel_size_um=number("pixel_size", float),
        input_max=number("input_max", int),
        convert_channels=(flag in _TRUE) if flag else None,
    )
