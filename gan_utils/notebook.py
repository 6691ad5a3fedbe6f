"""What a notebook needs besides the lesson: first cell, run profile, code on slides, controls, run summary."""
import ast
import inspect
import os
import sys
import textwrap
import time

import torch

from .utils import cpu_name, get_device
from .viz import use_course_style

PROFILE_VARIABLE = "GAN_PROFILE"
PROFILES = ("real", "ci")


def get_profile():
    """The run profile: 'real' (default, the full lesson) or 'ci' (tiny, for tests), from $GAN_PROFILE."""
    profile = os.environ.get(PROFILE_VARIABLE, "real").strip().lower() or "real"
    if profile not in PROFILES:
        raise ValueError(f"{PROFILE_VARIABLE}={profile!r} is not a run profile; use one of {PROFILES}")
    return profile


def by_profile(real, ci):
    """`real` in the real profile, `ci` in the CI profile: ``epochs = by_profile(real=250, ci=2)``."""
    return ci if get_profile() == "ci" else real


COLAB_CPU_NOTICE = ("This Colab runtime has no GPU: Runtime > Change runtime type > GPU. On a CPU the "
                    "real profile of this notebook takes about {minutes} minutes.")


def setup_notebook(cpu_minutes=None, threads=None):
    """A notebook's first cell: the course's figure style, the device (printed, returned), on Colab without a GPU a
    notice with `cpu_minutes` (the real profile's CPU time); threads: torch CPU threads."""
    use_course_style()
    if threads is not None:
        torch.set_num_threads(threads)
    device = get_device()
    if "google.colab" in sys.modules and device.type == "cpu" and cpu_minutes:
        print(COLAB_CPU_NOTICE.format(minutes=cpu_minutes))
    return device


def show_source(*objects, docstrings=True):
    """The source of functions or classes as one highlighted IPython `Markdown` block (``show_source(gu.d_step)``);
    docstrings=False leaves out each docstring."""
    from IPython.display import Markdown   # lazy: IPython comes with Jupyter, not with gan_utils

    parts = []
    for obj in objects:
        lines = textwrap.dedent(inspect.getsource(obj)).splitlines()
        if not docstrings:
            body = ast.parse("\n".join(lines)).body[0].body
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
                    and isinstance(first.value.value, str):
                del lines[first.lineno - 1:first.end_lineno]
        parts.append("\n".join(lines).rstrip())
    code = "\n\n".join(parts)
    return Markdown(f"```python\n{code}\n```")


def interact_manual(function, **controls):
    """ipywidgets' `interact_manual` (nothing runs until Run is pressed, so headless runs pass); controls in its
    abbreviations. Without ipywidgets, prints how to get it and returns None."""
    try:
        import ipywidgets                     # lazy: optional, the notebooks' controls only
    except ImportError:
        print(f"The controls need ipywidgets (pip install ipywidgets). Without it, call "
              f"{function.__name__}(...) yourself with the settings you want.")
        return None
    return ipywidgets.interact_manual(function, **controls)


def hardware(device):
    """One line naming the machine a run used: the GPU, or the CPU with its cores and torch threads."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def run_summary(start, device):
    """A notebook's last line: profile, seconds since `start` (time.perf_counter()), hardware and load average."""
    device = torch.device(device)
    load = ", load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return (f"profile {get_profile()}: {time.perf_counter() - start:.0f} s on {device} ({hardware(device)}{load}), "
            f"torch {torch.__version__}")
