"""Small helpers every run needs: seeding, the device, an int check."""
import os
import random

import numpy as np
import torch


def _check_int(name, value, minimum=1, hint=""):
    """`value`, or ValueError unless it is an int (not a bool) >= minimum; `hint` follows the bound in the message."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{hint}, got {value!r}")
    return value


def seed_everything(seed):
    """Seed Python's `random`, NumPy and torch (CPU and every GPU) with one number."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def get_device(prefer=None, verbose=True):
    """The fastest device: 'cuda', then 'mps', then 'cpu'; `prefer` (or $GAN_DEVICE) forces one, e.g. "cpu"."""
    prefer = prefer or os.environ.get("GAN_DEVICE")
    if prefer:
        device = torch.device(prefer)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if verbose:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
        print(f"device: {device} ({name}), torch {torch.__version__}")
    return device
