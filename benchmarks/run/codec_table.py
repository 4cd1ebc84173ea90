"""Output size and fidelity per tile codec of `mfpi-run`, on real through-focus stacks and the sample slide.

Why: README cites how much smaller the lossy OME-TIFF output is than the old zlib writer's, and what it
costs in fidelity. For one plane of each real Z-stack (`plane="sharpest"`, grey -> RGB) and for the
simulated sample slide, this runs `run_slide` with the bundled default model (ort-cpu, as `mfpi-run`
without --engine): first lossless (`compression="none"`, the reference), then once per codec. The engine
runs only for the reference: later runs replay its outputs (keyed by a hash of each input batch), so
every codec encodes the same planes. Recorded per codec: bytes per input megapixel, size against the
reference and against the old writer (plain tifffile zlib, no predictor, same tiles and pyramid), PSNR
of all of level 0 against the reference, and the run's own fidelity check (lowest tile PSNR, tiles
raised, tiles below the floor). It decides nothing; it records the table.

    python benchmarks/run/codec_table.py [--codecs jpeg:90 zstd ...] [--sample-size 1024] [--out PREFIX]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, write_report

CODECS = ["jpeg:80", "jpeg:85", "jpeg:90", "jpeg:95", "jpegxl:90", "zstd", "zlib"]
REAL = [
    ROOT / "benchmarks/data/real/bfdc_cell_brightfield_21z.ome.tif",
    ROOT / "benchmarks/data/real/sharpness_smear_brightfield_19z.tif",
    ROOT.parent / "shared/data/real/isl_kevan_0_8_A4_phasecontrast_13z.tif",
]


def replay_backend(real: Any) -> Any:
    """A Backend that runs `real` on a batch it has not seen and replays the stored output for one it has."""
    from mfpi_deploy.backends.base import Backend

    class Replay(Backend):
        def __init__(self) -> None:
            self.kind, self.spec, self.identity = real.kind, real.spec, real.identity
            self.outputs: dict[str, np.ndarray] = {}
            self.computed = 0  # batches the real engine ran

        def run(self, tiles: np.ndarray, dpm: np.ndarray | None = None) -> np.ndarray:
            h = hashlib.sha1(np.ascontiguousarray(tiles).tobytes())
            h.update(repr((tiles.shape, str(tiles.dtype), None if dpm is None else dpm.tobytes())).encode())
            key = h.hexdigest()
            if key not in self.outputs:
                self.outputs[key] = np.array(real.run(tiles, dpm))  # a copy: no buffer the engine reuses
                self.outputs[key].flags.writeable = False
                self.computed += 1
            return self.outputs[key]

        def describe(self) -> str:
            return real.describe()

        def close(self) -> None:
            real.close()

    return Replay()


def psnr_level0(path: Path, ref: np.ndarray) -> float:
    """PSNR (peak 255) of all planes of level 0 of `path` against `ref`; inf when equal."""
    got = tifffile.imread(path)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    sse = sum(float(np.square(got[z].astype(np.int32) - ref[z]).sum()) for z in range(len(ref)))
    return math.inf if sse == 0 else 10 * math.log10(255.0**2 * ref.size / sse)


def old_zlib_bytes(ref_path: Path, out: Path) -> tuple[int, int]:
    """Size of the reference (level 0 and pyramid) written as the old writer did: BigTIFF, tifffile zlib
    at its default level without a predictor, the reference's tile size, overview levels in SubIFDs.
    Returns (bytes, TIFF tile side)."""
    with tifffile.TiffFile(ref_path) as tif:
        levels = [level.asarray() for level in tif.series[0].levels]
        tile = tif.pages[0].tilewidth
    opts = dict(tile=(tile, tile), compression="zlib", photometric="rgb", planarconfig="contig")
    with tifffile.TiffWriter(out, bigtiff=True, ome=True) as tif:
        tif.write(levels[0], subifds=len(levels) - 1, metadata={"axes": "ZYXS"}, **opts)
        for level in levels[1:]:
            tif.write(level, subfiletype=1, metadata=None, **opts)
    return out.stat().st_size, tile


def run_input(backend: Any, path: Path, label: str, codecs: list[str], work: Path, stack: bool) -> dict[str, Any]:
    """The reference run and one run per codec of one input; their sizes and fidelity."""
    from mfpi_deploy.run import RunOptions, run_slide

    backend.outputs.clear()
    rows: list[dict[str, Any]] = []
    logs: list[str] = []
    ref_path = work / f"{path.stem}.none.ome.tif"
    ref: np.ndarray | None = None
    for codec in ["none", *codecs]:
        out = work / f"{path.stem}.{codec.replace(':', '-')}.ome.tif"
        options = RunOptions(
            plane="sharpest" if stack else None,
            convert_channels=True,
            compression=codec,
            overwrite=True,
            progress=False,
            log=logs.append,
        )
        before, start = backend.computed, time.perf_counter()
        s = run_slide(path, out, backend, options)
        row: dict[str, Any] = {
            "codec": codec,
            "seconds": time.perf_counter() - start,
            "engine_batches": backend.computed - before,  # 0 after the reference: replayed
            "output_bytes": s.output_bytes,
            "bytes_per_input_mpx": s.bytes_per_input_megapixel,
        }
        if ref is None:
            ref = tifffile.imread(out)
            info = {"input_mpx": s.input_megapixels, "tile": s.tile, "batch": s.batch, "level0_shape": ref.shape}
        psnr = psnr_level0(out, ref)
        row |= {"psnr_level0_db": None if math.isinf(psnr) else psnr, "bit_exact": math.isinf(psnr)}
        if s.codec is not None:
            row |= {k: getattr(s.codec, k) for k in ("floor_db", "tiles", "min_psnr_db", "raised", "below_floor")}
        rows.append(row)
        if codec != "none":
            out.unlink()
    old, tiff_tile = old_zlib_bytes(ref_path, work / f"{path.stem}.old-zlib.ome.tif")
    z, h, w, _ = info["level0_shape"]
    for row in rows:
        row["ratio_to_none"] = row["output_bytes"] / rows[0]["output_bytes"]
        row["ratio_to_old_zlib"] = row["output_bytes"] / old
    floors = {r["floor_db"] for r in rows if r.get("floor_db") is not None}
    return {
        "input": label,
        **info,
        "plane_log": next((line for line in logs if "running plane" in line), None),
        "tiff_tile": tiff_tile,
        "level0_tiles": z * -(-h // tiff_tile) * -(-w // tiff_tile),  # all planes (what `raised` counts)
        "old_zlib_bytes": old,
        "old_zlib_bytes_per_input_mpx": old / info["input_mpx"],
        "floor_db": floors.pop() if len(floors) == 1 else sorted(floors),
        "rows": rows,
    }


def dirty_note() -> str:
    """' (uncommitted changes in mfpi_deploy/)' when the package differs from the commit, else ''."""
    out = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "mfpi_deploy"], capture_output=True)
    return " (uncommitted changes in mfpi_deploy/)" if out.stdout.strip() else ""


def db(value: float | None) -> str:
    return "" if value is None else "inf" if math.isinf(value) else f"{value:.1f}"


def table(res: dict[str, Any]) -> list[str]:
    """Markdown table and notes of one input."""
    mpx, old = res["input_mpx"], res["old_zlib_bytes_per_input_mpx"]
    z, h, w, _ = res["level0_shape"]
    lines = [
        f"### {res['input']}",
        "",
        f"Input: {mpx:.3f} Mpx"
        + (f"; {res['plane_log'].split(': ', 1)[1]}" if res["plane_log"] else "")
        + f". Output level 0: {z} planes of {w}x{h} RGB in {res['tiff_tile']} px TIFF tiles "
        f"(engine tiles {res['tile']} px, batch {res['batch']}). "
        f"Fidelity floor of lossy tiles: {res['floor_db']} dB. Old writer (tifffile zlib, no predictor): "
        f"{old / 1e6:.2f} MB per input Mpx.",
        "",
        "| codec | MB per input Mpx | size / none | x smaller than old zlib | PSNR vs lossless, level 0 (dB) "
        "| lowest tile PSNR (dB) | tiles raised | below floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lossy = r.get("floor_db") is not None
        raised = f"{r['raised']} of {r['tiles']}" if lossy else ""
        whole = "bit-exact" if r["bit_exact"] else db(r["psnr_level0_db"])
        lines.append(
            f"| {r['codec']} | {r['bytes_per_input_mpx'] / 1e6:.2f} | {r['ratio_to_none']:.3f} "
            f"| {1 / r['ratio_to_old_zlib']:.2f} | {whole} | {db(r.get('min_psnr_db'))} "
            f"| {raised} | {r['below_floor'] if lossy else ''} |"
        )
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codecs", nargs="+", default=CODECS)
    ap.add_argument("--sample-size", type=int, default=1024, help="side of the simulated sample slide")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/run/results/codecs"), help="writes OUT.json, OUT.md")
    args = ap.parse_args()
    from mfpi_deploy.backends.select import open_backend
    from mfpi_deploy.bench.machine import describe_machine
    from mfpi_deploy.cli.run import resolve_engine
    from mfpi_deploy.gitinfo import git_commit
    from mfpi_deploy.run.sample import write_sample

    results, notes = [], []
    with tempfile.TemporaryDirectory() as tmp, open_backend("ort-cpu", resolve_engine(None, "ort-cpu", print)) as be:
        work, backend = Path(tmp), replay_backend(be)
        sample = work / f"sample-{args.sample_size}.ome.tif"
        notes.append(f"Sample slide: {write_sample(sample, args.sample_size)} (mfpi-run --make-sample).")
        for path in REAL:
            if not path.exists():
                notes.append(f"Skipped {os.path.relpath(path, ROOT)}: not present on this machine.")
                continue
            label = os.path.relpath(path, ROOT)
            results.append(run_input(backend, path, label, args.codecs, work, stack=True))
            print(*table(results[-1]), sep="\n", flush=True)
        label = f"simulated sample slide, {args.sample_size} px"
        results.append(run_input(backend, sample, label, args.codecs, work, stack=False))
        engine = be.describe()
    machine = describe_machine()
    result = {
        "what": "output size and fidelity per codec of run_slide, default model on ort-cpu (engine replayed)",
        "commit": git_commit(),
        "dirty": bool(dirty_note()),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "engine": engine,
        "machine": {**machine.__dict__, "one_line": machine.one_line()},
        "notes": notes,
        "inputs": results,
    }
    lines = [
        "# Output codecs: size and fidelity",
        "",
        f"Commit `{result['commit']}`{dirty_note()}, {result['date']}; `{result['command']}`.",
        f"Machine: {result['machine']['one_line']}. Engine: {engine}, bundled default model.",
        "",
        "Each input is run once lossless (`none`, the reference; the engine runs) and once per codec (the "
        "engine's outputs replayed), to .ome.tif. MB per input Mpx = output file bytes / input megapixels "
        "(level 0 and pyramid). Old zlib = the reference's levels rewritten as the old writer did (one BigTIFF, "
        "tifffile zlib at its default level, no predictor, same tile size, overviews in SubIFDs). PSNR vs "
        "lossless = all planes of level 0 against the reference; lowest tile PSNR and below floor = the run's own "
        "fidelity check (CodecReport: level-0 tiles of the first, centre and last plane scored against the "
        "floor); tiles raised = CodecReport's count of those checked tiles encoded above the chosen quality "
        "(a position's planes are all encoded at the quality its checked planes needed). Every level is stored "
        "in whole TIFF tiles, so the padding of partial tiles weighs on the size of small inputs.",
        "",
        *notes,
        "",
    ]
    for res in results:
        lines += table(res)
    write_report(args.out, result, lines)


if __name__ == "__main__":
    main()
