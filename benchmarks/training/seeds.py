"""The newcomer runs of every real stack and seed against bicubic: per-plane margins, one table and one plot.

    python benchmarks/training/seeds.py [benchmarks/training/real]

Reads STACK/seedN/metrics.json (as mfpi-eval writes it) and STACK/seedN/train_log.jsonl; writes
SUMMARY.md, SUMMARY.json and margins.png in that folder. The done-when of issue 21: every plane of
every stack above bicubic in every seed, and the mean margin at least +1 dB.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def margins(metrics: dict) -> list[float]:
    model, bicubic = metrics["methods"]["model"]["planes"], metrics["methods"]["bicubic"]["planes"]
    return [m["psnr"] - b["psnr"] for m, b in zip(model, bicubic)]


def last_record(folder: Path) -> dict:
    lines = (folder / "train_log.jsonl").read_text().splitlines() if (folder / "train_log.jsonl").exists() else []
    return json.loads(lines[-1]) if lines else {}


def main(root: Path) -> int:
    runs: dict[str, dict[str, dict]] = {}
    for metrics in sorted(root.glob("*/seed*/metrics.json")):
        folder = metrics.parent
        data = json.loads(metrics.read_text())
        last = last_record(folder)
        runs.setdefault(folder.parent.name, {})[folder.name] = {
            "margins_db": [round(m, 3) for m in margins(data)],
            "model_psnr": round(data["methods"]["model"]["mean"]["psnr"], 3),
            "bicubic_psnr": round(data["methods"]["bicubic"]["mean"]["psnr"], 3),
            "steps": last.get("global_step"),
            "wall_s": last.get("elapsed_s"),
            "cpu_s": last.get("cpu_s"),
            "conditions": (folder / "conditions.txt").read_text() if (folder / "conditions.txt").exists() else "",
        }
    lines = [
        "# Newcomer runs on the real stacks: model minus bicubic, held-out quarter",
        "",
        "Each run: `benchmarks/training/newcomer.sh STACK NAME/seedN 15 --seed N` (defaults, `--width 32`, "
        "`--max-minutes 15`, left 3/4 train, right 1/4 `mfpi-eval`); all runs by "
        "`benchmarks/training/newcomer_all.sh`, two at a time on the 2-core machine (conditions.txt in each "
        "folder: CPU, flags, load at start and end, commit).",
        "",
        "| stack | seed | mean margin (dB) | lowest plane margin (dB) | planes above bicubic | steps | wall s "
        "| CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    every_plane, all_means = True, []
    summary: dict[str, dict] = {}
    for stack, seeds in runs.items():
        means, lowest, clean = [], [], 0
        for seed, r in sorted(seeds.items()):
            m = r["margins_db"]
            above = sum(x > 0 for x in m)
            every_plane &= above == len(m)
            clean += above == len(m)
            means.append(float(np.mean(m)))
            lowest.append(min(m))
            lines.append(
                f"| {stack} | {seed} | {np.mean(m):+.2f} | {min(m):+.2f} | {above} of {len(m)} | {r['steps']} | "
                f"{r['wall_s']} | {r['cpu_s']} |"
            )
        all_means += means
        summary[stack] = {
            "mean_margin_db": round(float(np.mean(means)), 3),
            "lowest_plane_margin_db": round(min(lowest), 3),
            "runs_above_on_every_plane": clean,
            "seeds": len(means),
        }
    overall = float(np.mean(all_means)) if all_means else float("nan")
    lines += [
        "",
        "| stack | mean margin over its seeds (dB) | lowest plane margin in any seed (dB) "
        "| seeds above bicubic on every plane |",
        "|---|---|---|---|",
        *[
            f"| {s} | {v['mean_margin_db']:+.2f} | {v['lowest_plane_margin_db']:+.2f} | "
            f"{v['runs_above_on_every_plane']} of {v['seeds']} |"
            for s, v in summary.items()
        ],
        "",
        f"Mean margin over all runs: {overall:+.2f} dB; every plane of every run above bicubic: "
        f"{'yes' if every_plane else 'no'}.",
    ]
    (root / "SUMMARY.md").write_text("\n".join(lines) + "\n")
    (root / "SUMMARY.json").write_text(
        json.dumps({"runs": runs, "stacks": summary, "mean_margin_db": overall, "every_plane": every_plane}, indent=1)
        + "\n"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(len(runs), 1), figsize=(4 * max(len(runs), 1), 3.2), dpi=110, squeeze=False)
    for ax, (stack, seeds) in zip(axes[0], runs.items()):
        for seed, r in sorted(seeds.items()):
            ax.plot(range(-5, -5 + len(r["margins_db"])), r["margins_db"], marker="o", label=seed)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_title(stack)
        ax.set_xlabel("plane (steps from the input plane)")
        ax.set_ylabel("model - bicubic PSNR (dB)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(root / "margins.png")
    print("\n".join(lines))
    return 0 if every_plane and overall >= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "real"))
