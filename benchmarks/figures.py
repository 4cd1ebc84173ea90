"""Which figures the READMEs cite from recorded results, and whether the cited files carry them.

A figure is a decimal number or a percentage (integers are counts: planes, cores, pixels). A
paragraph (or a table, with the paragraph before it) that names a results file under benchmarks/
cites the figures in it from those files: each must appear in one of them (the file itself or,
for a `.md` results file, its `.json` twin), to the precision README prints it. `python benchmarks/figures.py` lists the
figures that do not; tests/test_readme_figures.py fails on any.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READMES = (
    "README.md",
    "training/README.md",
    "mfpi_deploy/assets/default_model/README.md",
    "benchmarks/run/HISTORY.md",
    "benchmarks/serve/HISTORY.md",
)
CITATION = re.compile(
    r"benchmarks/[\w./-]*?(?:results|RESULTS)[\w./-]*\.(?:md|json|csv|txt)"
    r"|benchmarks/training/(?:real|heldout)/[\w./-]+\.(?:md|json|txt)|benchmarks/[\w./-]+/SUMMARY\.md"
)
FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?%|(?<![\w.+-])[+-]?\d+\.\d+(?![\w.%])")


@dataclass(frozen=True)
class Miss:
    readme: str
    line: int
    figure: str
    cited: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.readme}:{self.line}: {self.figure} not found in {', '.join(self.cited)}"


def blocks(text: str) -> list[tuple[int, list[str]]]:
    """Paragraphs and tables as (first line number, lines); code blocks and images are skipped."""
    out: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start, fenced = 0, False
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("!["):
            continue
        if not line.strip():
            if current:
                out.append((start, current))
            current = []
            continue
        if not current:
            start = i
        current.append(line)
    if current:
        out.append((start, current))
    return out


def source_text(path: str) -> str | None:
    """The cited file's text (and its .json twin's), or None if it does not exist."""
    f = ROOT / path
    if not f.is_file():
        return None
    text = f.read_text(errors="replace")
    twin = f.with_suffix(".json")
    if twin != f and twin.is_file():
        text += "\n" + twin.read_text(errors="replace")
    return text


THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # 86,703.7 -> 86703.7
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def carried(figure: str, text: str) -> bool:
    """The figure's value appears in the text to the figure's precision: a number there rounds to
    it (a percentage may be written there as a share, 0.42 for 42%); signs are compared unsigned."""
    bare = figure.lstrip("+-")
    percent = bare.endswith("%")
    bare = bare.rstrip("%")
    places = len(bare.split(".")[1]) if "." in bare else 0
    value = float(bare)
    for token in NUMBER.findall(THOUSANDS.sub("", text)):
        x = abs(float(token))
        if round(x, places) == value or (percent and round(100 * x, places) == value):
            return True
    return False


def check(readme: str) -> list[Miss]:
    misses: list[Miss] = []
    text = (ROOT / readme).read_text()
    cited: tuple[str, ...] = ()
    for start, lines in blocks(text):
        joined = "\n".join(lines)
        table = all(line.lstrip().startswith("|") for line in lines)
        found = tuple(dict.fromkeys(CITATION.findall(joined)))
        if found:
            cited = found
        elif not table:
            cited = ()
        if not cited:
            continue
        texts = [source_text(c) for c in cited]
        for c, t in zip(cited, texts):
            if t is None:
                misses.append(Miss(readme, start, "(file)", (c,)))
        body = "\n".join(t for t in texts if t)
        for offset, line in enumerate(lines):
            for m in FIGURE.finditer(THOUSANDS.sub("", CITATION.sub("", line))):
                if not carried(m.group(), body):
                    misses.append(Miss(readme, start + offset, m.group(), cited))
    return misses


def main() -> int:
    misses = [m for r in READMES if (ROOT / r).is_file() for m in check(r)]
    for m in misses:
        print(m)
    print(f"{len(misses)} figure(s) not carried by the results they cite", file=sys.stderr)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
