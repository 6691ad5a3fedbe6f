"""Test-wide settings: the CI profile, and the offline data folder when it exists.

Notebook kernels started by nbval inherit these environment variables.
"""
import os
from pathlib import Path

os.environ.setdefault("GAN_PROFILE", "ci")
_shared = Path(__file__).resolve().parent.parent / "shared" / "data"
if "GAN_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["GAN_DATA_DIR"] = str(_shared)
