"""What a notebook needs besides the lesson: first cell, run profile, code on slides, controls, run summary."""
import ast
import inspect
import json
import os
import platform
import sys
import textwrap
import time
from importlib import resources

import torch

from .utils import get_device
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
GPU_CLASSES = {"T4": ("T4",), "H100": ("H100", "H200", "H800")}     # a class: the names it covers
REPOSITORY = "git+https://github.com/gan-course/gan-course"


def reinstall(version=None):
    """The command that installs gan_utils `version` (default: gan_utils.__version__, set after this import)."""
    version = version or sys.modules[__package__].__version__
    return f'pip install --force-reinstall --no-deps "gan_utils @ {REPOSITORY}@v{version}"'


def version_notice(version):
    """None when the installed gan_utils is `version` (a notebook's pin), else one line: both versions and the fix."""
    installed = sys.modules[__package__].__version__
    if version not in (None, installed):
        return f"gan_utils {installed} is installed, this notebook is for {version}: {reinstall(version)}, then " \
               "restart the kernel"


def gpu_notice(gpu_minutes, name):
    """One line: the real profile's expected minutes on the GPU `name`, from gpu_minutes {'T4': m, 'H100': m}."""
    gpu_class = next((c for c, marks in GPU_CLASSES.items() if any(m in name for m in marks)), None)
    if gpu_class in gpu_minutes:
        return (f"On this GPU ({name}) the real profile of this notebook should take about "
                f"{gpu_minutes[gpu_class]} minutes (an estimate for the {gpu_class} class, not timed).")
    known = " and ".join(f"{m} min on a{'n' if c[0] == 'H' else ''} {c}-class GPU" for c, m in gpu_minutes.items())
    return f"On a GPU the real profile of this notebook should take about {known} (estimates; {name} not timed)."


def setup_notebook(cpu_minutes=None, threads=None, gpu_minutes=None, version=None, **newer):
    """A notebook's first cell: the course's figure style, the device (printed, returned); on Colab without a GPU a
    notice with `cpu_minutes` (the real profile's CPU time); on a GPU the expected minutes from `gpu_minutes`
    ({'T4': m, 'H100': m}); threads: torch CPU threads. version: the notebook's pin; another installed version
    prints one line with the fix first (arguments of later versions, `newer`, are then ignored)."""
    notice = version_notice(version)
    if notice:
        print(notice)
    elif newer:
        raise TypeError(f"setup_notebook() got unexpected keyword arguments {sorted(newer)}")
    use_course_style()
    if threads is not None:
        torch.set_num_threads(threads)
    device = get_device()
    if "google.colab" in sys.modules and device.type == "cpu" and cpu_minutes:
        print(COLAB_CPU_NOTICE.format(minutes=cpu_minutes))
    if device.type == "cuda" and gpu_minutes:
        print(gpu_notice(gpu_minutes, torch.cuda.get_device_name(device)))
    return device


def load_result(name):
    """A committed result of experiments/, package data (gan_utils/results/<name>, importlib.resources): a .json file
    as its data, a .png sample grid as bytes; a missing file raises FileNotFoundError naming it and the fix."""
    path = resources.files(__package__) / "results" / name
    if not path.is_file():
        raise FileNotFoundError(f"gan_utils/results/{name} is not in this install of gan_utils (broken or partial): "
                                f"run {reinstall()}; in a clone, the experiments/ script that writes it (its README)")
    return json.loads(path.read_bytes()) if name.endswith(".json") else path.read_bytes()


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
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                del lines[first.lineno - 1:first.end_lineno]
        parts.append("\n".join(lines).rstrip())
    return Markdown("```python\n" + "\n\n".join(parts) + "\n```")


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
    """One line naming the machine a run used: the GPU, or the CPU (its model name from /proc/cpuinfo on Linux) with
    its cores and torch threads."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    return f"CPU ({name}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def run_summary(start, device):
    """A notebook's last line: profile, seconds since `start` (time.perf_counter()), hardware and load average."""
    device = torch.device(device)
    load = ", load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return (f"profile {get_profile()}: {time.perf_counter() - start:.0f} s on {device} ({hardware(device)}{load}), "
            f"torch {torch.__version__}")
