"""Summary of benchmarks/training/gan_ab.sh: L1 alone against the paper's L1 + adversarial phase at equal steps.

    python benchmarks/training/gan_ab_summary.py [benchmarks/training/gan_ab]

Writes SUMMARY.md and SUMMARY.json there: per stack and seed, each arm's mean margin over bicubic on the
held-out quarter, its lowest plane, mean SSIM, and the CPU seconds of its steps (train_log.jsonl).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from seeds import margins  # the script's own folder is on sys.path


def row(folder: Path) -> dict:
    data = json.loads((folder / "metrics.json").read_text())
    model = data["methods"]["model"]
    gains = margins(data)
    last = json.loads((folder / "train_log.jsonl").read_text().splitlines()[-1])
    return {
        "mean_margin_db": round(float(np.mean(gains)), 3),
        "lowest_plane_margin_db": round(min(gains), 3),
        "ssim": round(model["mean"]["ssim"], 4),
        "steps": last["global_step"],
        "cpu_s": last["cpu_s"],
    }


def main(root: Path) -> None:
    runs: dict[str, dict[str, dict[str, dict]]] = {}
    for f in sorted(root.glob("*/*/seed*/metrics.json")):
        stack, arm, seed = f.parent.parent.parent.name, f.parent.parent.name, f.parent.name
        runs.setdefault(stack, {}).setdefault(seed, {})[arm] = row(f.parent)
    lines = [
        "# L1 alone against L1 + adversarial, equal steps (`benchmarks/training/gan_ab.sh 400`)",
        "",
        "Width 32, 400 planned steps each (`--epochs 1 --steps-per-epoch 400`), train on the left 3/4, "
        "`mfpi-eval` on the right 1/4. gan: the paper's adversarial BCE at 0.01 from half the run, "
        "discriminator width 64. Conditions (CPU, load, commit) in each run's conditions.txt.",
        "",
        "| stack | seed | l1: mean margin (dB) | gan: mean margin (dB) | l1 / gan: lowest plane (dB) "
        "| l1 / gan: SSIM | l1 / gan: CPU s | gan / l1 CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    wins = {"l1": 0, "gan": 0, "tie": 0}
    for stack, seeds in runs.items():
        for seed, arms in sorted(seeds.items()):
            a, g = arms.get("l1"), arms.get("gan")
            if a is None or g is None:
                only = a or g
                arm = "l1" if a else "gan"
                lines.append(
                    f"| {stack} | {seed} | {arm} only: {only['mean_margin_db']:+.2f} (other arm not run) | | | | |"
                )
                continue
            diff = a["mean_margin_db"] - g["mean_margin_db"]
            wins["tie" if abs(diff) < 0.05 else "l1" if diff > 0 else "gan"] += 1
            lines.append(
                f"| {stack} | {seed} | {a['mean_margin_db']:+.2f} | {g['mean_margin_db']:+.2f} | "
                f"{a['lowest_plane_margin_db']:+.2f} / {g['lowest_plane_margin_db']:+.2f} | {a['ssim']:.4f} / "
                f"{g['ssim']:.4f} | {a['cpu_s']:.0f} / {g['cpu_s']:.0f} | {g['cpu_s'] / a['cpu_s']:.1f}x |"
            )
    lines += [
        "",
        f"Pairs where L1 alone is ahead by 0.05 dB or more: {wins['l1']}; the adversarial arm ahead: {wins['gan']}; "
        f"within 0.05 dB: {wins['tie']}.",
    ]
    (root / "SUMMARY.md").write_text("\n".join(lines) + "\n")
    (root / "SUMMARY.json").write_text(json.dumps({"runs": runs, "pairs": wins}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "gan_ab")
