"""`python -m mfpi_deploy.models`: parameters and FLOPs of MFPINet and Deep-Z (Table III sizes)."""

from __future__ import annotations

from mfpi_deploy.models.flops import profile_model


def main() -> None:
    rows = [
        ("MFPINet generator (11 planes)", profile_model("mfpinet", (1, 3, 384, 384)), 1),
        ("MFPINet discriminator", profile_model("mfpinet_discriminator", (1, 33, 768, 768)), 1),
        ("Deep-Z generator, one plane", profile_model("deepz", (1, 4, 768, 768)), 1),
        ("Deep-Z generator, 11 planes", profile_model("deepz", (1, 4, 768, 768)), 11),
    ]
    print(f"{'network':32} {'input':>16} {'output':>18} {'params':>12} {'GFLOPs':>9}")
    for label, p, passes in rows:
        shape_in = "x".join(map(str, p.input_shape))
        shape_out = "x".join(map(str, p.output_shape))
        print(f"{label:32} {shape_in:>16} {shape_out:>18} {p.parameters:>12,} {p.gflops * passes:>9.2f}")


if __name__ == "__main__":
    main()
