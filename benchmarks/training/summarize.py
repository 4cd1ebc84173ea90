"""Markdown tables of recorded evaluations: model vs bicubic PSNR per plane, one row pair per run.

python benchmarks/training/summarize.py benchmarks/training/real/smear benchmarks/training/real/isl ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from seeds import margins  # the script's own folder is on sys.path


def table(folder: Path) -> str:
    data = json.loads((folder / "metrics.json").read_text())
    model = data["methods"]["model"]
    bicubic = data["methods"]["bicubic"]
    offsets = [p["offset"] for p in model["planes"]]
    unit = data["offsets_unit"]
    head = f"| {folder.name} ({unit}) | " + " | ".join(f"{o:+g}" for o in offsets) + " | mean |"
    rows = [head, "|---" * (len(offsets) + 2) + "|"]
    for name, res in (("model", model), ("bicubic", bicubic)):
        cells = [f"{p['psnr']:.2f}" for p in res["planes"]]
        rows.append(f"| {name} PSNR | " + " | ".join(cells) + f" | {res['mean']['psnr']:.2f} |")
    gains = margins(data)
    rows.append(
        "| model - bicubic | "
        + " | ".join(f"{g:+.2f}" for g in gains)
        + f" | {model['mean']['psnr'] - bicubic['mean']['psnr']:+.2f} |"
    )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(table(Path(arg)))
