"""Small helpers every notebook needs: seeding, the device, and the run profile."""
import os
import random

import numpy as np
import torch

PROFILE_VARIABLE = "GAN_PROFILE"
PROFILES = ("real", "ci")


def cpu_name():
    """The CPU's model name (from /proc/cpuinfo on Linux, else what `platform` knows)."""
    import platform
    name = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            name = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), name)
    return name


def seed_everything(seed):
    """Seed Python's `random`, NumPy and torch (CPU and every GPU) with one number.

    The same seed on the same machine, torch version and thread count gives the same run.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def get_device(prefer=None, verbose=True):
    """Pick the fastest device available: 'cuda', then 'mps' (Apple), then 'cpu'.

    `prefer` forces one (e.g. "cpu"); the environment variable GAN_DEVICE does the same.
    """
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


def get_profile():
    """The run profile: 'real' (default, the full lesson) or 'ci' (tiny and fast, for tests).

    Set it with the environment variable GAN_PROFILE=ci.
    """
    profile = os.environ.get(PROFILE_VARIABLE, "real").strip().lower() or "real"
    if profile not in PROFILES:
        raise ValueError(f"{PROFILE_VARIABLE}={profile!r} is not a run profile; use one of {PROFILES}")
    return profile


def by_profile(real, ci):
    """Return `real` in the real profile and `ci` in the CI profile.

    A notebook writes each setting once for both runs, e.g. ``epochs = by_profile(real=250, ci=2)``.
    """
    return ci if get_profile() == "ci" else real


COLAB_CPU_NOTICE = ("This Colab runtime has no GPU: Runtime > Change runtime type > GPU. On a CPU the "
                    "real profile of this notebook takes about {minutes} minutes.")


def setup_notebook(cpu_minutes=None, threads=None, device=None):
    """What every notebook's first cell does after installing gan_utils: apply the course's
    figure style (readable on a projector), pick the device (printed), and on Colab without a GPU
    say so, with `cpu_minutes`, the expected run time of the real profile on a CPU.
    threads: torch CPU threads (1 suits the tiny toy networks). Returns the device."""
    import sys

    from .viz import use_course_style

    use_course_style()
    if threads is not None:
        torch.set_num_threads(threads)
    device = get_device(device)
    if "google.colab" in sys.modules and device.type == "cpu" and cpu_minutes:
        print(COLAB_CPU_NOTICE.format(minutes=cpu_minutes))
    return device
