"""Options and summary of one slide run (the library API behind `mfpi-run`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.codecs import CodecReport, parse_codec
from mfpi_deploy.slide.source import Region
from mfpi_deploy.slide.zstack import PlaneChoice, check_plane
from mfpi_deploy.tiling import DEFAULT_HALO, check_halo


@dataclass(frozen=True)
class PreviewOptions:
    """A PNG montage of the input and a few output planes of one region, written once the output is in place."""

    path: Path | None = None  # None: <output stem>.preview.png next to the output
    region: Region | None = None  # x, y, w, h in input pixels of the level read; None: a centred block
    side: int = 256  # side of the default centred block, input pixels
    planes: int = 5  # output planes shown: first, last and evenly spaced between

    def __post_init__(self) -> None:
        if self.path is not None and Path(self.path).suffix.lower() != ".png":
            raise MfpiError(f"--preview writes a PNG: the name must end in .png, got {self.path}")
        if self.side < 1 or self.planes < 1:
            raise MfpiError(f"preview side and planes must be at least 1, got {self.side} and {self.planes}")


@dataclass
class RunOptions:
    """How to run a slide. Defaults: level 0, whole slide, measured halo, tile and batch from the engine."""

    level: int = 0
    series: int = 0  # which image of a TIFF holding several
    plane: PlaneChoice = None  # which z plane of a Z-stack: a number or "sharpest" (None: 2D input only)
    region: Region | None = None
    pixel_size_um: float | None = None  # input pixel size; overrides the file's metadata
    convert_channels: bool = False  # grey <-> RGB when slide and engine differ
    input_max: int | None = None  # 16-bit value that maps to 255 (default: MaxSampleValue tag, else 65535)
    halo: int = DEFAULT_HALO
    tile: int | None = None  # input tile side; None: the engine profile's least wasteful size
    batch: int | None = None  # None: the engine profile's optimum batch
    overwrite: bool = False
    resume: bool = False
    skip_finished: bool = False  # an existing output recorded with this run's settings is kept, not refused
    queue_batches: int = 2  # bound of each queue between reader, engine and writer
    sync_seconds: float = 5.0  # how often finished batches are journaled (their files are synced at once)
    writers: int | None = None  # encoder threads (codecs release the GIL); None: the cores the engine leaves, >= 1
    compression: str | None = None  # "jpeg:90", "zstd", "zlib", "none", ...; None: the format's default
    lossless: bool = False  # with no compression given: the format's lossless codec (bit-exact planes)
    jpeg_on_gpu: bool = False  # JPEG tiles encoded by nvImageCodec on the GPU (output.gpu_jpeg; other bytes)
    model_psnr_db: float | None = None  # overrides the model's PSNR against truth (default: its card's)
    engine_id: str = ""  # overrides the engine's identity for resume checks (default: what open_backend recorded)
    allow_empty_tiles: bool = False  # read tiles a TIFF stores no data for as black instead of refusing
    preview: PreviewOptions | None = None  # a PNG montage of input and planes after the output is in place
    progress: bool = True
    log: Callable[[str], None] = print
    # (tiles just finished, tiles this call computes): once with 0 at the start, then per batch
    on_tiles: Callable[[int, int], None] | None = None

    def __post_init__(self) -> None:
        """Refuse values no run can use, before anything is read or written."""
        size = self.pixel_size_um
        if size is not None and not (math.isfinite(size) and 0 < size < 1e6):
            raise MfpiError(f"--pixel-size must be a positive number of micrometres, got {size}")
        for name, value, low in (
            ("--level", self.level, 0),
            ("--series", self.series, 0),
            ("--tile", self.tile, 1),
            ("--batch", self.batch, 1),
        ):
            if value is not None and value < low:
                raise MfpiError(f"{name} must be at least {low}, got {value}")
        check_halo(self.halo)
        check_plane(self.plane)
        if self.compression is not None:
            codec = parse_codec(self.compression)  # a bad name or level is refused before anything is read
            if self.lossless and not codec.lossless:
                raise MfpiError(f"--lossless contradicts --compression {codec.label}")
        if self.writers is not None and self.writers < 1:
            raise MfpiError(f"--writers must be at least 1, got {self.writers}")
        if not (math.isfinite(self.sync_seconds) and self.sync_seconds >= 0):
            raise MfpiError(f"--sync-every must be zero or a positive number of seconds, got {self.sync_seconds}")


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the closing summary and for benchmarks."""

    output: Path
    backend: str
    tiles: int  # tiles in the plan
    tiles_computed: int  # tiles computed by this call (fewer on a resume)
    tile: int
    batch: int
    halo: int
    seconds: float  # wall time of this call, reading to final rename
    inference_seconds: float  # wall time of the tile loop (read, infer, write overlapped)
    input_megapixels: float
    halo_overhead: float  # share of computed input pixels thrown away (halos, edge overhang)
    resumed: bool = False
    skipped: bool = False  # the output was already finished with the same settings (skip_finished)
    codec: CodecReport | None = None  # what the output's tiles were encoded with, and the fidelity check
    output_bytes: int = 0

    @property
    def megapixels_per_second(self) -> float:
        """Input megapixels computed per second of the tile loop (this call's tiles only)."""
        share = self.tiles_computed / self.tiles if self.tiles else 0.0
        return self.input_megapixels * share / self.inference_seconds if self.inference_seconds else 0.0

    @property
    def bytes_per_input_megapixel(self) -> float:
        return self.output_bytes / self.input_megapixels if self.input_megapixels else 0.0

    @property
    def tiles_per_second(self) -> float:
        return self.tiles_computed / self.inference_seconds if self.inference_seconds else 0.0

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"output: {self.output}", "skipped: already finished with the same settings"]
        return [
            f"output: {self.output}",
            f"backend: {self.backend}",
            f"tiles: {self.tiles} of {self.tile}x{self.tile} px, halo {self.halo}, batch {self.batch}"
            + (f" ({self.tiles - self.tiles_computed} done before resume)" if self.resumed else ""),
            f"time: {self.seconds:.1f} s total, {self.inference_seconds:.1f} s tiles; "
            f"{self.tiles_per_second:.2f} tiles/s, {self.megapixels_per_second:.3f} MP/s",
            f"halo overhead: {100 * self.halo_overhead:.1f}% of computed pixels thrown away",
            *([f"compression: {self.codec.line()}"] if self.codec is not None else []),
            f"size: {self.output_bytes / 1e6:.1f} MB, {self.bytes_per_input_megapixel / 1e6:.2f} MB per input Mpx",
        ]
