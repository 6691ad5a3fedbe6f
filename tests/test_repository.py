"""The repository stays cheap to clone: no tracked file over 1 MB, apart from an explicit allow-list."""
import subprocess
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 1_000_000
ALLOWED = {"notebooks/*.ipynb": 3_000_000, "gan_utils/weights/*.pt": 5_000_000}  # pattern: its own limit


def tracked_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an sdist or wheel): nothing to check")
    return [name for name in out.decode().split("\0") if name]


def size_limit(name):
    return next((limit for pattern, limit in ALLOWED.items() if fnmatch(name, pattern)), LIMIT)


def test_no_tracked_file_over_its_size_limit():
    too_big = [f"{name}: {(ROOT / name).stat().st_size / 1e6:.2f} MB (limit {size_limit(name) / 1e6:.0f} MB)"
               for name in tracked_files()
               if (ROOT / name).is_file() and (ROOT / name).stat().st_size > size_limit(name)]
    assert not too_big, ("tracked files over their size limit; data, packages and downloads never go "
                         "into the repository (git rm --cached them and add them to .gitignore): " + "; ".join(too_big))


def test_size_limits():
    assert size_limit("dataset-fashion-mnist_0.0-1_all.deb") == LIMIT
    assert size_limit("notebooks/03_mnist_mlp_gan.ipynb") == 3_000_000
    assert size_limit("gan_utils/weights/mnist_cnn_paper.pt") == 5_000_000


def test_no_machine_paths_in_docs():
    """Committed docs name $GAN_DATA_DIR, not the folders of one machine."""
    offenders = [name for name in tracked_files() if name.endswith((".md", ".py", ".sh", ".toml", ".yml"))
                 and name != "tests/test_repository.py" and "/work/" in (ROOT / name).read_text(errors="ignore")]
    assert not offenders, f"machine-specific paths (/work/...) in {offenders}: write $GAN_DATA_DIR instead"


def test_package_exports_what_notebooks_import():
    import gan_utils as gu

    assert all(hasattr(gu, name) for name in gu.__all__)
    for name in ("train_gan", "d_step", "g_step", "accuracy", "held_out", "mnist_split", "fast_steps", "toy"):
        assert name in gu.__all__, name
