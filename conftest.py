"""Test-wide settings: the CI profile, all of MNIST from ../shared/mnist-full when it exists, and
a fresh checkpoint folder (so that a notebook never reloads a run from an earlier test session).

Notebook kernels started by nbval inherit these environment variables.
"""
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("GAN_PROFILE", "ci")
_shared = Path(__file__).resolve().parent.parent / "shared" / "mnist-full"
if "GAN_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["GAN_DATA_DIR"] = str(_shared)
os.environ.setdefault("GAN_CHECKPOINT_DIR", tempfile.mkdtemp(prefix="gan-course-checkpoints-"))

MNIST_NOTEBOOKS = ("03_mnist_mlp_gan.ipynb", "05_dcgan.ipynb")


def _devices():
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pytest_generate_tests(metafunc):
    """Every test that takes a `device` argument runs on the CPU, and on CUDA when there is a GPU."""
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", _devices())


def _load_script(relative_path):
    """A script of the repository (experiments/, scripts/) imported as a module, without running
    its main(): its functions can then be tested."""
    import importlib.util

    path = Path(__file__).resolve().parent / relative_path
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_collection_modifyitems(config, items):
    """Skip the MNIST notebooks, with the loader's own explanation, when MNIST is neither in the
    data root nor downloadable (a fresh offline machine). With internet it is downloaded here."""
    import pytest

    mnist_items = [item for item in items if item.path.name in MNIST_NOTEBOOKS]
    if not mnist_items:
        return
    import warnings

    import gan_utils

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gan_utils.mnist.load_images("mnist", train=False)
    except FileNotFoundError as exc:
        skip = pytest.mark.skip(reason=f"no MNIST data: {exc}")
        for item in mnist_items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def load_script():
    """load_script("experiments/04_mnist.py") -> that script as a module (see _load_script)."""
    return _load_script
