"""mfpi-bench: Table III measured on the user's hardware (MFPINet vs Deep-Z per-plane inference)."""
