from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from mfpi_deploy.cli.run import default_output, main
from mfpi_deploy.export.accuracy import psnr_per_plane
from mfpi_deploy.output import ome_tiff, zarr_stack
from tests.mfpi_deploy.run.helpers import focal_stack, textured, tiny_checkpoint, write_tiff, write_zstack


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("ckpts")
    return {c: tiny_checkpoint(root / f"c{c}", channels=c) for c in (1, 3)}


def _run(args: list[str], ckpt: Path) -> object:
    return CliRunner().invoke(main, [*args, "--engine", str(ckpt), "--backend", "torch", "--threads", "1", "--quiet"])


def test_run_writes_stack_and_summary(tmp_path: Path, ckpts: dict[int, Path]) -> None:
    src = write_tiff(tmp_path / "slide.ome.tif", textured(40, 56), pixel_size_um=0.5)
    result = _run([str(src)], ckpts[3])
    assert result.exit_code == 0, result.output
    out = tmp_path / "slide.mfp.ome.tif"
    assert default_output(src) == out and out.is_file()
    assert "halo overhead" in result.stdout and "tiles/s" in result.stdout
    assert tifffile.imread(out).shape == (11, 80, 112, 3)
    zarr_out = tmp_path / "z.ome.zarr"
    result = _run([str(src), "-o", str(zarr_out), "--region", "8,4,30,20"], ckpts[3])
    assert result.exit_code == 0, result.output
    assert zarr_stack.open_level(zarr_out, 0).shape == (3, 11, 40, 60)
    result = _run([str(src), "-o", str(zarr_out)], ckpts[3])
    assert result.exit_code != 0 and "--overwrite" in result.stderr


def _assert_one_error_line(stderr: str) -> None:
    """One error line, the last one (an info line about the slide may come before it)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr


def _bad_input(tmp_path: Path, case: str) -> tuple[Path, list[str]]:
    path = tmp_path / "in.tif"
    extra: list[str] = []
    if case == "missing":
        pass
    elif case == "non-image":
        path.write_text("this is text, not a slide\n" * 10)
    elif case == "truncated":
        write_tiff(path, textured(64, 64), tile=(16, 16), compression="zlib")
        path.write_bytes(path.read_bytes()[:1500])
    elif case == "corrupt":
        write_tiff(path, textured(64, 64), tile=(16, 16), compression="zlib")
        data = bytearray(path.read_bytes())
        data[8:40] = b"\xff" * 32  # smash the first IFD
        path.write_bytes(bytes(data))
    elif case == "corrupt-pixels":
        write_tiff(path, textured(64, 64), tile=(16, 16), compression="zlib")
        with tifffile.TiffFile(path) as tif:
            offset = tif.pages[0].dataoffsets[5]
        data = bytearray(path.read_bytes())
        data[offset : offset + 40] = b"\x00garbage!" * 4 + b"\x00" * 4
        path.write_bytes(bytes(data))
    elif case == "zero-size":
        with pytest.warns(UserWarning):
            tifffile.imwrite(path, np.zeros((0, 10), np.uint8))
    elif case == "header-lies":
        tifffile.imwrite(path, textured(64, 64, channels=1))
        with tifffile.TiffFile(path, mode="r+") as tif:
            tif.pages[0].tags["ImageLength"].overwrite(6400)
    elif case == "float":
        tifffile.imwrite(path, np.zeros((32, 32, 3), np.float32), photometric="rgb")
    elif case == "wrong-channels":
        write_tiff(path, textured(32, 32, channels=1))
    elif case == "bad-region":
        write_tiff(path, textured(32, 32))
        extra = ["--region", "30,0,10,10"]
    elif case == "bad-output-name":
        write_tiff(path, textured(32, 32))
        extra = ["-o", str(tmp_path / "out.png")]
    elif case == "output-dir-missing":
        write_tiff(path, textured(32, 32))
        extra = ["-o", str(tmp_path / "nowhere" / "out.ome.tif")]
    elif case == "output-dir-unwritable":
        write_tiff(path, textured(32, 32))
        extra = ["-o", "/proc/out.ome.tif"]  # not writable even for root
    return path, extra


BAD = [
    "missing",
    "non-image",
    "truncated",
    "corrupt",
    "corrupt-pixels",
    "zero-size",
    "header-lies",
    "float",
    "wrong-channels",
    "bad-region",
    "bad-output-name",
    "output-dir-missing",
    "output-dir-unwritable",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_inputs_one_line_error_nothing_left(tmp_path: Path, ckpts: dict[int, Path], case: str) -> None:
    path, extra = _bad_input(tmp_path, case)
    before = set(tmp_path.iterdir())
    result = _run([str(path), *extra], ckpts[3])
    assert result.exit_code not in (0, None), result.output
    _assert_one_error_line(result.stderr)
    assert "Traceback" not in result.output
    assert set(tmp_path.iterdir()) == before  # no output, no partial run, no temporary file


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--region", "30,0,10,10"], "error: region x=30 y=0 w=10 h=10 reaches outside the 32x32 image"),
        (["--lossless", "--compression", "jpeg"], "error: --lossless contradicts --compression jpeg:85"),
        (
            ["--backend", "ort-cpu", "--streams", "1"],
            "error: --streams sets OpenVINO's streams; backend ort-cpu has none",
        ),
    ],
)
def test_option_conflicts_are_refused_before_the_engine_is_looked_at(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    src = write_tiff(tmp_path / "a.tif", textured(32, 32))
    result = CliRunner().invoke(main, [str(src), *extra, "--engine", str(tmp_path / "no-such-engine"), "--quiet"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [message]  # not the missing engine, nor a log line about it


def test_unwritable_output_folder_is_refused_also_for_root(tmp_path: Path, ckpts: dict[int, Path]) -> None:
    """CI runs as root, for whom a chmod 555 folder is writable: /sys refuses new files to root too
    (sysfs: EACCES, or EROFS where it is mounted read-only), so the refusal is real for every user."""
    import os

    src = write_tiff(tmp_path / "a.tif", textured(32, 32))
    folders = [Path("/sys")]
    if os.geteuid() != 0:  # for anyone else a folder without write permission is refused the same way
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        folders.append(locked)
    for folder in folders:
        result = _run([str(src), "-o", str(folder / "o.ome.tif")], ckpts[3])
        assert result.exit_code != 0
        _assert_one_error_line(result.stderr)
        assert result.stderr.strip().splitlines()[-1].startswith(f"error: cannot write into output folder {folder} (")
        assert not (folder / "o.ome.tif").exists()


def test_disk_full_is_one_line_and_resumable(
    tmp_path: Path, ckpts: dict[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_tiff(tmp_path / "a.tif", textured(48, 48))
    real = ome_tiff.write_durable
    calls = {"n": 0}

    def fills_up(*args: object) -> None:  # the disk fills up after the first tile's packet
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(*args)

    monkeypatch.setattr(ome_tiff, "write_durable", fills_up)
    out = tmp_path / "o.ome.tif"
    result = _run([str(src), "-o", str(out), "--tile", "48", "--halo", "8"], ckpts[3])
    assert result.exit_code != 0
    _assert_one_error_line(result.stderr)
    assert "no space left on device" in result.stderr and "--resume" in result.stderr
    assert not out.exists()
    monkeypatch.setattr(ome_tiff, "write_durable", real)
    result = _run([str(src), "-o", str(out), "--tile", "48", "--halo", "8", "--resume"], ckpts[3])
    assert result.exit_code == 0, result.output
    assert out.is_file()


def test_grey_slide_on_rgb_engine_with_conversion(tmp_path: Path, ckpts: dict[int, Path]) -> None:
    src = write_tiff(tmp_path / "g.tif", textured(24, 24, channels=1))
    result = _run([str(src), "--convert-channels", "-o", str(tmp_path / "g.ome.zarr")], ckpts[3])
    assert result.exit_code == 0, result.output
    assert zarr_stack.open_level(tmp_path / "g.ome.zarr", 0).shape == (3, 11, 48, 48)


def test_make_sample_then_run(tmp_path: Path, ckpts: dict[int, Path]) -> None:
    sample = tmp_path / "sample.tif"
    result = CliRunner().invoke(main, ["--make-sample", str(sample), "--sample-size", "48"])
    assert result.exit_code == 0, result.output
    with tifffile.TiffFile(sample) as tif:
        assert tif.is_ome and tif.series[0].shape == (48, 48, 3)
    result = _run([str(sample)], ckpts[3])
    assert result.exit_code == 0, result.output
    with tifffile.TiffFile(tmp_path / "sample.mfp.ome.tif") as tif:
        assert tif.series[0].shape == (11, 96, 96, 3)
        assert 'PhysicalSizeX="0.243"' in tif.ome_metadata  # 0.486 µm input / 2
    again = CliRunner().invoke(main, ["--make-sample", str(sample), "--sample-size", "48"])
    assert again.exit_code != 0 and "--overwrite" in again.stderr
    for args, says in (
        (["--make-sample", str(tmp_path / "s.png")], "give it a .tif or .tiff name"),
        ([str(sample), "--make-sample", str(tmp_path / "s2.tif")], "give no SLIDE with it"),
    ):
        result = CliRunner().invoke(main, [*args, "--sample-size", "48"])
        assert result.exit_code == 2 and says in result.stderr, result.output
        _assert_one_error_line(result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("s")) == ["sample.mfp.ome.tif", "sample.tif"]


def test_16_bit_input_max_and_palette_refusal(tmp_path: Path, ckpts: dict[int, Path]) -> None:
    g12 = (textured(32, 40, channels=1, dtype=np.uint16) >> 4).astype(np.uint16)  # 12-bit data
    src = write_tiff(tmp_path / "g12.tif", g12)
    a, b = tmp_path / "a.ome.zarr", tmp_path / "b.ome.zarr"
    assert _run([str(src), "-o", str(a)], ckpts[1]).exit_code == 0
    assert _run([str(src), "-o", str(b), "--input-max", "4095"], ckpts[1]).exit_code == 0
    assert not np.array_equal(zarr_stack.open_level(a, 0)[:], zarr_stack.open_level(b, 0)[:])
    pal = tmp_path / "pal.tif"
    tifffile.imwrite(pal, np.zeros((16, 16), np.uint8), photometric="palette", colormap=np.zeros((3, 256), np.uint16))
    result = _run([str(pal)], ckpts[3])
    assert result.exit_code != 0 and "palette" in result.stderr
    # four samples that are not RGB + alpha, and grey with 0 = white: read as RGB/grey they would
    # run to a wrong output (CMYK's black was dropped as "alpha"); refused in one line instead
    cmyk, white = tmp_path / "cmyk.tif", tmp_path / "white.tif"
    tifffile.imwrite(cmyk, textured(16, 16, channels=4), photometric="separated")
    tifffile.imwrite(white, textured(16, 16, channels=1), photometric="miniswhite")
    for path, ckpt, says in [(cmyk, ckpts[3], "a CMYK (separated) image"), (white, ckpts[1], "min-is-white")]:
        result = _run([str(path), "-o", str(tmp_path / f"{path.stem}.ome.zarr")], ckpt)
        assert result.exit_code == 2 and says in result.stderr, result.output
        _assert_one_error_line(result.stderr)
        assert not (tmp_path / f"{path.stem}.ome.zarr").exists()


def test_existing_output_is_refused_before_the_engine_is_loaded(tmp_path: Path) -> None:
    """No export or engine load (slow on first use) for a run that cannot write its output."""
    src = write_tiff(tmp_path / "slide.tif", textured(16, 16))
    (tmp_path / "slide.mfp.ome.tif").write_bytes(b"earlier result")
    result = CliRunner().invoke(main, [str(src), "--engine", str(tmp_path / "no-such-engine"), "--quiet"])
    assert result.exit_code == 2
    out = tmp_path / "slide.mfp.ome.tif"
    assert result.stderr.strip().splitlines() == [f"error: {out} exists; pass --overwrite to replace it"]
    assert (tmp_path / "slide.mfp.ome.tif").read_bytes() == b"earlier result"


def test_overwrite_never_replaces_the_input_or_a_folder_no_run_wrote(tmp_path: Path, ckpts: dict[int, Path]) -> None:
    src = write_tiff(tmp_path / "slide.ome.tif", textured(16, 16))
    kept = src.read_bytes()
    (tmp_path / "link.ome.tif").symlink_to(src)
    for out in (src, tmp_path / "link.ome.tif"):  # the slide itself, by its name or another
        result = _run([str(src), "-o", str(out), "--overwrite"], ckpts[3])
        assert result.exit_code == 2 and "is the input slide" in result.stderr, result.output
        _assert_one_error_line(result.stderr)
    notes = tmp_path / "notes.ome.zarr"
    notes.mkdir()
    (notes / "notes.txt").write_text("lab notes")
    folder_tif = tmp_path / "folder.ome.tif"
    folder_tif.mkdir()
    for out in (notes, folder_tif):
        result = _run([str(src), "-o", str(out), "--overwrite"], ckpts[3])
        assert result.exit_code == 2 and "mfpi-run did not write" in result.stderr, result.output
    assert src.read_bytes() == kept and (notes / "notes.txt").read_text() == "lab notes" and folder_tif.is_dir()
    made = tmp_path / "made.ome.zarr"  # a stack a run wrote is replaced, as --overwrite says
    assert _run([str(src), "-o", str(made)], ckpts[3]).exit_code == 0
    (made / "stray.txt").write_text("x")
    assert _run([str(src), "-o", str(made), "--overwrite"], ckpts[3]).exit_code == 0
    assert not (made / "stray.txt").exists() and zarr_stack.open_level(made, 0).shape == (3, 11, 32, 32)


def test_precision_option_runs_the_int8_variant(tmp_path: Path, mfpinet_engine: Path) -> None:
    src = write_tiff(tmp_path / "slide.tif", textured(40, 56, channels=1))
    outs = {}
    for backend, precision in (("ort-cpu", "fp32"), ("openvino", "int8"), ("auto", "int8")):
        if backend != "ort-cpu":
            pytest.importorskip("openvino")
        out = tmp_path / f"{backend}-{precision}.ome.zarr"
        result = CliRunner().invoke(
            main,
            [
                str(src),
                "-o",
                str(out),
                "--engine",
                str(mfpinet_engine),
                "--backend",
                backend,
                "--precision",
                precision,
                "--threads",
                "1",
                "--quiet",
            ],
        )
        assert result.exit_code == 0, result.output
        outs[backend] = zarr_stack.open_level(out, 0)[:]
    # The int8 variant's promise is its export gate: every plane within threshold_db of fp32. A whole
    # run through mfpi-run keeps it (README: tiled int8 stays within the gate of the fp32 output).
    gate = json.loads((mfpinet_engine / "manifest.json").read_text())["accuracy"]["int8"]["threshold_db"]
    stacks = {k: np.moveaxis(v, 0, -1)[None] for k, v in outs.items()}  # OME-Zarr (C, Z, Y, X) -> (1, Z, Y, X, C)
    assert min(psnr_per_plane(stacks["openvino"], stacks["ort-cpu"])) >= gate
    result = CliRunner().invoke(
        main, [str(src), "--engine", str(mfpinet_engine), "--backend", "torch", "--precision", "int8", "--quiet"]
    )
    assert (
        result.exit_code == 2
        and result.stderr.strip()
        == f"error: backend torch cannot run {mfpinet_engine} in int8: torch runs fp32, not int8"
    )


def test_streams_option_sets_openvinos_streams_and_keeps_the_bytes(tmp_path: Path, mfpinet_engine: Path) -> None:
    """--streams 1 (less memory) computes one tile at a time where the default computes two side by
    side; the summary names the streams it ran with, and the planes are the same bytes."""
    pytest.importorskip("openvino")
    src = write_tiff(tmp_path / "slide.tif", textured(96, 80, channels=1))  # 4 tiles: 2 in flight
    runs = {}
    for streams in (None, "1"):
        out = tmp_path / f"s{streams}.ome.tif"
        args = [str(src), "-o", str(out), "--engine", str(mfpinet_engine), "--backend", "openvino"]
        args += ["--precision", "int8", "--threads", "2", "--quiet"]
        result = CliRunner().invoke(main, args + (["--streams", streams] if streams else []))
        assert result.exit_code == 0, result.output
        backend_line = next(line for line in result.stdout.splitlines() if line.startswith("backend:"))
        runs[streams] = (backend_line, tifffile.imread(out))
    assert runs[None][0].endswith("2 thread(s), 2 streams)") and runs["1"][0].endswith("2 thread(s))")
    assert np.array_equal(runs[None][1], runs["1"][1])


def test_zstack_runs_one_plane(tmp_path: Path, ckpts: dict[int, Path]) -> None:
    stack = focal_stack(40, 48, planes=5, sharp=3)
    src = write_zstack(tmp_path / "stack.ome.tif", stack)
    before = set(tmp_path.iterdir())
    result = _run([str(src)], ckpts[3])
    assert result.exit_code == 2, result.output
    _assert_one_error_line(result.stderr)
    assert "a Z-stack of 5 planes" in result.stderr and "--plane" in result.stderr
    result = _run([str(src), "--plane", "9"], ckpts[3])
    assert result.exit_code == 2, result.output
    _assert_one_error_line(result.stderr)
    assert "plane 9 does not exist (the Z-stack has 5 planes, 0..4)" in result.stderr
    assert set(tmp_path.iterdir()) == before

    for choice, plane in (("2", 2), ("sharpest", 3)):
        out = tmp_path / f"plane-{choice}.ome.tif"
        result = _run([str(src), "--plane", choice, "-o", str(out)], ckpts[3])
        assert result.exit_code == 0, result.output
        assert f"running plane {plane}" in result.stderr
        flat = write_tiff(tmp_path / f"flat{plane}.tif", stack[plane], pixel_size_um=0.5)
        assert _run([str(flat), "-o", str(tmp_path / f"flat{plane}.ome.tif")], ckpts[3]).exit_code == 0
        assert np.array_equal(tifffile.imread(out), tifffile.imread(tmp_path / f"flat{plane}.ome.tif"))
    assert not np.array_equal(tifffile.imread(tmp_path / "flat2.ome.tif"), tifffile.imread(tmp_path / "flat3.ome.tif"))


def test_a_folder_of_slides_needs_a_folder_output_and_a_refused_cohort_leaves_nothing(
    tmp_path: Path, ckpts: dict[int, Path]
) -> None:
    slides, empty = tmp_path / "slides", tmp_path / "empty"
    slides.mkdir()
    empty.mkdir()
    write_tiff(slides / "a.tif", textured(16, 16))
    result = _run([str(slides), "-o", str(tmp_path / "out.ome.tif")], ckpts[3])
    assert result.exit_code == 2 and "names one output file" in result.stderr, result.output
    result = _run([str(empty), "-o", str(tmp_path / "new")], ckpts[3])
    assert result.exit_code == 2 and "no slides in this folder" in result.stderr, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "slides"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["slide.tif", "--threads", "0"], "Invalid value for '--threads': 0 is not in the range x>=1."),
        (["slide.tif", "--streams", "0"], "Invalid value for '--streams': 0 is not in the range x>=1."),
        (["slide.tif", "--backend", "foo"], "Invalid value for '--backend': 'foo' is not one of"),
        (["slide.tif", "--nosuch"], "No such option '--nosuch'"),
    ],
)
def test_click_usage_errors_are_one_error_line_too(args: list[str], says: str) -> None:
    """What click refuses before the command runs follows the same rule as every refusal: one
    `error:` line, exit code 2 (it was click's usage block: 3-4 lines starting `Usage:`)."""
    result = CliRunner().invoke(main, args, prog_name="mfpi-run")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert says in result.stderr and result.stderr.strip().endswith("(see mfpi-run --help)")
    assert CliRunner().invoke(main, ["--help"]).exit_code == 0
