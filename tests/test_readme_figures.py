"""README figures that cite a results file under benchmarks/ are the figures that file carries."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("figures", ROOT / "benchmarks" / "figures.py")
figures = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("figures", figures)  # dataclasses look their module up
_spec.loader.exec_module(figures)


def test_every_cited_figure_is_in_its_results_file():
    misses = [m for r in figures.READMES if (ROOT / r).is_file() for m in figures.check(r)]
    assert not misses, "\n".join(map(str, misses))


def test_a_figure_the_file_does_not_carry_is_caught(tmp_path, monkeypatch):
    results = tmp_path / "benchmarks" / "run" / "results"
    results.mkdir(parents=True)
    (results / "x.md").write_text("| halo | identical |\n| 48 | 99.922% |\n| lowest | 86,703.7 ms |\n")
    (tmp_path / "README.md").write_text(
        "Tiled equals whole for 99.92% of values, lowest 86,703.7 ms (`benchmarks/run/results/x.md`).\n\n"
        "| a | b |\n|---|---|\n| 99.97% | 12.5 dB |\n\n"
        "Uncited paragraph: 42.0 dB is not checked.\n\n"
        "Gone: `benchmarks/run/results/missing.md` says 1.5 s.\n"
    )
    monkeypatch.setattr(figures, "ROOT", tmp_path)
    misses = {(m.line, m.figure) for m in figures.check("README.md")}
    assert misses == {(5, "99.97%"), (5, "12.5"), (9, "(file)"), (9, "1.5")}


def test_refresh_names_scripts_that_exist():
    """benchmarks/refresh is the one command behind README's figures: every script it runs exists."""
    text = (ROOT / "benchmarks" / "refresh").read_text()
    import re

    scripts = set(re.findall(r"python (benchmarks/[\w/]+\.py)", text))
    assert len(scripts) >= 8 and all((ROOT / s).is_file() for s in scripts), sorted(scripts)
