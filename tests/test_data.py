"""gan_utils.data: toy samplers, minibatches and the offline-safe image loader."""
import gzip
import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import gan_utils as gu
from gan_utils import mnist as gmnist

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"   # as conftest.py finds it
MNIST_FULL, MNIST_TEST_ONLY = SHARED / "mnist-full", SHARED / "data"
needs_full = pytest.mark.skipif(not (MNIST_FULL / "MNIST" / "raw").is_dir(),
                                reason=f"all of MNIST is not at {MNIST_FULL}")
needs_test_only = pytest.mark.skipif(not (MNIST_TEST_ONLY / "MNIST" / "raw").is_dir(),
                                     reason=f"the offline MNIST test split is not at {MNIST_TEST_ONLY}")


def write_idx(path, array):
    """Write a uint8 array in IDX format (the generated fixture stands in for MNIST)."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def register_md5(monkeypatch, *paths, table=None):
    """Make the generated fixture files the 'published' MNIST (or `table`'s) files (md5 of the decompressed bytes)."""
    for path in paths:
        raw = gzip.open(path).read() if str(path).endswith(".gz") else Path(path).read_bytes()
        monkeypatch.setitem(gmnist.MNIST_MD5 if table is None else table, Path(path).name.removesuffix(".gz"),
                            hashlib.md5(raw).hexdigest())


def fake_split(raw, prefix, images, labels, monkeypatch, gz=False):
    """Write one split of a fake MNIST into raw/ and register its md5s. Returns the two paths."""
    raw.mkdir(parents=True, exist_ok=True)
    paths = [raw / f"{prefix}-{kind}-ubyte{'.gz' if gz else ''}" for kind in ("images-idx3", "labels-idx1")]
    write_idx(paths[0], images)
    write_idx(paths[1], labels)
    register_md5(monkeypatch, *paths)
    return paths


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """A fake MNIST test split (20 images) in <tmp>/MNIST/raw, decompressed like torchvision's."""
    rng = np.random.default_rng(0)
    fake_split(tmp_path / "MNIST" / "raw", "t10k", rng.integers(0, 256, (20, 28, 28)), np.arange(20) % 10, monkeypatch)
    return tmp_path


def no_network(*args, **kwargs):
    raise OSError("no network (simulated)")


def test_toy_samplers_shapes_and_support():
    gu.seed_everything(0)
    x = gu.sample_gaussian_1d(20000, mu=4, sigma=1.25)
    assert x.shape == (20000, 1) and x.dtype == torch.float32
    assert abs(x.mean().item() - 4) < 0.05 and abs(x.std().item() - 1.25) < 0.05
    p = gu.sample_line_2d(500, slope=0.5, intercept=1.0, x_range=(-2, 2))
    assert p.shape == (500, 2)
    assert torch.allclose(p[:, 1], 0.5 * p[:, 0] + 1.0)
    assert p[:, 0].min() >= -2 and p[:, 0].max() <= 2
    noisy = gu.sample_line_2d(2000, 0.5, 1.0, noise=0.1)
    assert 0.05 < gu.metrics.line_distances(noisy, 0.5, 1.0).mean() < 0.12
    assert gu.ring_centers(8).shape == (8, 2) and torch.allclose(gu.ring_centers(8).norm(dim=1), torch.tensor(2.0))
    assert gu.grid_centers(5).shape == (25, 2)
    ring = gu.sample_mixture_2d(100, gu.ring_centers(8), std=0.02)
    assert ring.shape == gu.sample_mixture_2d(100, gu.grid_centers(5), std=0.05).shape == (100, 2)
    assert ((ring.norm(dim=1) - 2.0).abs() < 0.2).all()                 # on the ring of radius 2
    u = gu.data.sample_noise(1000, 3, "uniform")
    assert u.shape == (1000, 3) and u.abs().max() <= 1
    assert gu.make_noise(5)(7).shape == (7, 5)


def test_bad_toy_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="sigma must be positive"):
        gu.sample_gaussian_1d(10, sigma=0)
    with pytest.raises(ValueError, match="x_range"):
        gu.sample_line_2d(10, x_range=(2, -2))
    with pytest.raises(ValueError, match="'normal' or 'uniform'"):
        gu.make_noise(4, kind="gaussian")


def test_tensor_batches_cover_every_example_once_per_epoch():
    data = torch.arange(103).float().view(-1, 1)
    batches = gu.TensorBatches(data, 10)
    assert len(batches) == 10
    seen = torch.cat(list(batches)).view(-1)
    assert len(seen) == 100 and len(set(seen.tolist())) == 100  # no repeats, last partial dropped
    assert not torch.equal(seen, torch.arange(100).float())        # shuffled
    with pytest.raises(ValueError, match="batch_size"):
        gu.TensorBatches(data, 0)
    with pytest.raises(ValueError, match="one example per row"):
        gu.TensorBatches([1, 2, 3], 1)


def test_toy_batches():
    batches = gu.ToyBatches(lambda n: torch.zeros(n, 2), 16, 5)
    assert len(batches) == 5 and [b.shape for b in batches] == [(16, 2)] * 5


def test_read_idx_rejects_truncated_files(tmp_path):
    write_idx(tmp_path / "x-idx3-ubyte", np.zeros((4, 28, 28)))
    assert gu.mnist.read_idx(tmp_path / "x-idx3-ubyte").shape == (4, 28, 28)
    (tmp_path / "cut").write_bytes((tmp_path / "x-idx3-ubyte").read_bytes()[:500])
    with pytest.raises(ValueError, match="truncated"):
        gu.mnist.read_idx(tmp_path / "cut")


def test_load_images_from_fixture_scales(tiny_mnist):
    x, y, info = gu.mnist.load_images("mnist", train=False, root=tiny_mnist, download=False)
    assert x.shape == (20, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 <= x.min() and x.max() <= 1 and info == {"split": "test", "n": 20, "root": str(tiny_mnist)}
    x2, _, _ = gu.mnist.load_images("mnist", train=False, root=tiny_mnist, pixels="-11", limit=5, download=False)
    assert x2.shape[0] == 5 and x2.min() >= -1 and x2.max() <= 1
    assert torch.allclose(x2, x[:5] * 2 - 1)


def test_missing_train_split_falls_back_to_test_with_a_warning(tiny_mnist, monkeypatch, capsys):
    monkeypatch.setattr(gmnist, "_download", no_network)
    with pytest.warns(UserWarning, match="Falling back to the 10,000-image TEST split"):
        x, _, info = gu.mnist.load_images("mnist", train=True, root=tiny_mnist)
    assert info["split"] == "test" and len(x) == 20
    assert "TEST split" in capsys.readouterr().out


def test_no_data_offline_raises_an_error_that_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setattr(gmnist, "_download", no_network)
    with pytest.raises(FileNotFoundError, match="GAN_DATA_DIR") as err:
        gu.mnist.load_images("mnist", train=True, root=tmp_path)
    assert str(tmp_path / "MNIST" / "raw") in str(err.value) and "download=True" in str(err.value)
    with pytest.raises(ValueError, match="unknown dataset"):
        gu.mnist.load_images("cifar", root=tmp_path)
    with pytest.raises(ValueError, match="pixels must be '01'"):
        gu.mnist.load_images("mnist", root=tmp_path, pixels="0-255")


def test_download_has_a_time_limit(tmp_path, monkeypatch):
    import socket
    seen = {}

    class FakeMNIST:
        def __init__(self, root, train, download):
            seen["timeout"] = socket.getdefaulttimeout()
            raise OSError("offline")

    monkeypatch.setattr("torchvision.datasets.MNIST", FakeMNIST)
    with pytest.raises(FileNotFoundError):
        gu.mnist.load_images("mnist", train=False, root=tmp_path)
    assert seen["timeout"] == gmnist.DOWNLOAD_TIMEOUT_S and socket.getdefaulttimeout() is None


def test_any_gzip_of_the_right_data_is_accepted_and_wrong_bytes_are_not(tmp_path, monkeypatch):
    """One rule for .gz and plain files: the md5 of the DECOMPRESSED bytes."""
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (5, 28, 28)), np.arange(5)
    plain = fake_split(tmp_path / "plain" / "MNIST" / "raw", "t10k", images, labels, monkeypatch)
    raw = tmp_path / "gz" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in plain:  # another gzip wrapper: other compression level, file name and time stamp
        with open(raw / (path.name + ".gz"), "wb") as f, gzip.GzipFile("x", "wb", 1, f, mtime=1) as g:
            g.write(path.read_bytes())
    x, y, _ = gu.mnist.load_images("mnist", train=False, root=tmp_path / "gz", download=False)
    assert torch.equal((x[:, 0] * 255).round().byte(), torch.from_numpy(images.astype(np.uint8)))
    bad = bytearray(plain[0].read_bytes())
    bad[1000] ^= 1
    plain[0].write_bytes(bytes(bad))  # a plain file is checked too
    with pytest.raises(ValueError) as err:
        gu.mnist.load_images("mnist", train=False, root=tmp_path / "plain", download=False)
    message = str(err.value)
    assert str(plain[0]) in message and gmnist.MNIST_MD5["t10k-images-idx3-ubyte"] in message
    assert "GAN_DATA_DIR" in message and "Keep it" in message and "delete" not in message.lower()


@needs_full
def test_swapped_real_mnist_files_are_named(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    src = MNIST_FULL / "MNIST" / "raw"
    os.symlink(src / "t10k-labels-idx1-ubyte.gz", raw / "t10k-images-idx3-ubyte.gz")
    os.symlink(src / "t10k-images-idx3-ubyte.gz", raw / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match="it holds MNIST's t10k-labels-idx1-ubyte .files swapped or renamed") as err:
        gu.mnist.load_images("mnist", train=False, root=tmp_path, download=False)
    assert str(raw / "t10k-images-idx3-ubyte.gz") in str(err.value)


def test_truncated_gz_names_the_file_and_the_cause(tmp_path, monkeypatch):
    paths = fake_split(tmp_path / "MNIST" / "raw", "t10k", np.zeros((50, 28, 28)), np.zeros(50), monkeypatch, gz=True)
    paths[0].write_bytes(paths[0].read_bytes()[:-30])
    with pytest.raises(ValueError, match="EOFError|corrupt") as err:
        gu.mnist.load_images("mnist", train=False, root=tmp_path, download=False)
    assert str(paths[0]) in str(err.value) and "delete" not in str(err.value).lower()


@pytest.mark.parametrize("mangle", ["truncate", "garbage"])
def test_corrupt_fashion_mnist_gz_names_the_file_and_cause(tmp_path, mangle):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "t10k-images-idx3-ubyte.gz", np.zeros((50, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.zeros(50))
    gz = raw / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:40] if mangle == "truncate" else b"\x1f\x8b" + bytes(100))
    with pytest.raises(ValueError) as err:
        gu.mnist.load_images("fashion_mnist", train=False, root=tmp_path, download=False)
    assert str(gz) in str(err.value) and ("EOFError" in str(err.value) or "BadGzipFile" in str(err.value))


@pytest.mark.parametrize("case, match", [
    ("swapped", "swapped"), ("flat", r"\(20, 784\)"), ("14x14", r"\(20, 14, 14\)"), ("label 10", "0-9")])
def test_idx_loader_checks_what_it_loaded(tmp_path, monkeypatch, case, match):
    images, labels = np.zeros((20, 28, 28)), np.arange(20) % 10
    if case == "swapped":
        images, labels = labels, images
    elif case == "flat":
        images = images.reshape(20, 784)
    elif case == "14x14":
        images = np.zeros((20, 14, 14))
    else:
        labels = labels + 1
    paths = fake_split(tmp_path / "MNIST" / "raw", "t10k", images, labels, monkeypatch)
    with pytest.raises(ValueError, match=match) as err:
        gu.mnist.load_images("mnist", train=False, root=tmp_path, download=False)
    assert str(paths[0]) in str(err.value) or str(paths[1]) in str(err.value)


def test_broken_idx_headers_name_the_file(tmp_path):
    write_idx(tmp_path / "good", np.zeros((4, 28, 28)))
    good = (tmp_path / "good").read_bytes()
    for cut in range(16):  # a header cut anywhere inside its first 16 bytes
        (tmp_path / "cut").write_bytes(good[:cut])
        with pytest.raises(ValueError, match=str(tmp_path / "cut")):
            gu.mnist.read_idx(tmp_path / "cut")
    (tmp_path / "ndim0").write_bytes(bytes([0, 0, 8, 0]) + bytes(10))
    with pytest.raises(ValueError, match="ndim 0") as err:
        gu.mnist.read_idx(tmp_path / "ndim0")
    assert str(tmp_path / "ndim0") in str(err.value)


@pytest.mark.parametrize("limit", [-1, 0, 2.5, True])
def test_limit_must_be_a_positive_count(tiny_mnist, limit):
    with pytest.raises(ValueError, match="limit must be a positive number"):
        gu.mnist.load_images("mnist", train=False, root=tiny_mnist, limit=limit, download=False)


def test_a_failed_or_bad_download_leaves_nothing_behind(tmp_path, monkeypatch):
    """torchvision writes into a temporary folder; only verified files are renamed into raw/."""
    import torchvision
    raw = tmp_path / "MNIST" / "raw"
    payload = {}

    class PartialMNIST:  # writes half a file, then the connection drops
        def __init__(self, root, train, download):
            d = Path(root) / "MNIST" / "raw"
            d.mkdir(parents=True, exist_ok=True)
            (d / "t10k-images-idx3-ubyte.gz").write_bytes(payload["images"][:100])
            raise OSError("connection reset (simulated)")

    class GoodMNIST:
        def __init__(self, root, train, download):
            d = Path(root) / "MNIST" / "raw"
            d.mkdir(parents=True, exist_ok=True)
            (d / "t10k-images-idx3-ubyte.gz").write_bytes(payload["images"])
            (d / "t10k-labels-idx1-ubyte.gz").write_bytes(payload["labels"])

    src = fake_split(tmp_path / "src", "t10k", np.full((30, 28, 28), 7), np.arange(30) % 10, monkeypatch, gz=True)
    payload["images"], payload["labels"] = src[0].read_bytes(), src[1].read_bytes()
    monkeypatch.setattr(torchvision.datasets, "MNIST", PartialMNIST)
    with pytest.raises(FileNotFoundError, match="connection reset"):
        gu.mnist.load_images("mnist", train=False, root=tmp_path)
    assert sorted(p.name for p in raw.iterdir()) == []  # no partial file, no leftover temporary folder
    monkeypatch.setitem(gmnist.MNIST_MD5, "t10k-labels-idx1-ubyte", "0" * 32)  # a download with wrong bytes
    monkeypatch.setattr(torchvision.datasets, "MNIST", GoodMNIST)
    with pytest.raises(FileNotFoundError, match="0{32}"):
        gu.mnist.load_images("mnist", train=False, root=tmp_path)
    assert sorted(p.name for p in raw.iterdir()) == []
    register_md5(monkeypatch, src[1])
    x, _, _ = gu.mnist.load_images("mnist", train=False, root=tmp_path)  # a later download still works
    assert len(x) == 30 and sorted(p.name for p in raw.iterdir()) == [p.name for p in src]


def test_data_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("GAN_DATA_DIR", str(tmp_path))
    assert gu.mnist.data_root() == tmp_path
    assert gu.mnist.data_root("elsewhere") == gmnist.Path("elsewhere")
    monkeypatch.delenv("GAN_DATA_DIR")
    assert gu.mnist.data_root() == gmnist.CHECKOUT_DIR / "data"
    assert (gmnist.CHECKOUT_DIR / "pyproject.toml").is_file()  # this checkout
    monkeypatch.setattr(gmnist, "CHECKOUT_DIR", tmp_path / "site-packages")  # an installed package
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gu.mnist.data_root() == gu.mnist.user_cache_dir() == tmp_path / "xdg" / "gan-course"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert gu.mnist.data_root() == tmp_path / "home" / ".cache" / "gan-course"


def test_gan_data_dir_that_is_missing_or_empty_says_what_and_where(monkeypatch, tmp_path):
    monkeypatch.setattr(gmnist, "_download", no_network)
    monkeypatch.setenv("GAN_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError) as err:
        gu.mnist.load_images("mnist", train=False)
    assert f"GAN_DATA_DIR={tmp_path / 'typo'} is not a folder" in str(err.value)
    assert "MNIST/raw/t10k-images-idx3-ubyte" in str(err.value)
    assert not (tmp_path / "typo").exists()  # not created by a download attempt
    monkeypatch.setenv("GAN_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        gu.mnist.load_images("mnist", train=False)
    assert str(tmp_path / "MNIST" / "raw") in str(err.value) and f"GAN_DATA_DIR={tmp_path}" in str(err.value)
    assert "t10k-images-idx3-ubyte" in str(err.value)


@needs_full
def test_full_mnist_root_loads_both_splits_md5_checked():
    """../shared/mnist-full: its training .gz wrapper differs from the official download (their
    .gz md5s differ) but the decompressed bytes are MNIST's, so the loader accepts them."""
    from torchvision.datasets.utils import calculate_md5
    gz = MNIST_FULL / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    assert calculate_md5(str(gz)) != "f68b3c2dcbeaaa9fbdd348bbdeb94873"  # torchvision's md5 of the official .gz
    x, y, info = gu.mnist.load_images("mnist", train=True, root=MNIST_FULL, download=False)
    assert x.shape == (60000, 1, 28, 28) and info["split"] == "train"
    assert torch.bincount(y).tolist()[:3] == [5923, 6742, 5958]  # MNIST's training label counts
    s = gu.mnist_split(root=MNIST_FULL, download=False)
    assert s["protocol"] == "paper" and [len(s[f"x_{k}"]) for k in ("train", "valid", "test")] == [50000, 1000, 10000]
    assert torch.equal(s["x_valid"], x[50000:51000]) and torch.equal(s["y_train"], y[:50000])


@needs_test_only
def test_real_mnist_test_split_loads_offline(monkeypatch):
    """The known trap: torchvision insists on all four files; the loader needs only two."""
    monkeypatch.setattr(gmnist, "_download", no_network)
    with pytest.warns(UserWarning, match="TEST split"):
        x, y, info = gu.mnist.load_images("mnist", train=True, root=MNIST_TEST_ONLY)
    assert x.shape == (10000, 1, 28, 28) and info["split"] == "test"
    assert sorted(y.unique().tolist()) == list(range(10))
    assert abs(x.mean().item() - 0.1325) < 0.005   # MNIST's well-known mean intensity


def test_install_debian_fashion_mnist(tmp_path, monkeypatch):
    src = tmp_path / "debian"
    src.mkdir()
    write_idx(src / "t10k-images-idx3-ubyte.gz", np.full((3, 28, 28), 255))
    write_idx(src / "t10k-labels-idx1-ubyte.gz", [1, 2, 3])
    register_md5(monkeypatch, *src.iterdir(), table=gmnist.FASHION_MNIST_MD5)
    raw = gu.mnist.install_debian_fashion_mnist(tmp_path / "root", source=src)
    assert (raw / "t10k-images-idx3-ubyte").exists()
    x, y, _ = gu.mnist.load_images("fashion_mnist", train=False, root=tmp_path / "root", download=False)
    assert x.shape == (3, 1, 28, 28) and x.min() == 1 and y.tolist() == [1, 2, 3]
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        gu.mnist.install_debian_fashion_mnist(tmp_path, source=tmp_path / "nowhere")


def test_installed_fashion_mnist_is_found_whatever_the_data_root(tmp_path, monkeypatch):
    """The Debian package is decompressed into the writable per-user cache (the data root may be
    read-only, as ../shared is in CI) and load_images finds it there."""
    src = tmp_path / "debian"
    src.mkdir()
    write_idx(src / "t10k-images-idx3-ubyte.gz", np.full((2, 28, 28), 255))
    write_idx(src / "t10k-labels-idx1-ubyte.gz", [4, 5])
    register_md5(monkeypatch, *src.iterdir(), table=gmnist.FASHION_MNIST_MD5)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    raw = gu.mnist.install_debian_fashion_mnist(source=src)
    assert raw == tmp_path / "cache" / "gan-course" / "FashionMNIST" / "raw"
    x, y, _ = gu.mnist.load_images("fashion_mnist", train=False, root=tmp_path / "readonly", download=False)
    assert x.shape == (2, 1, 28, 28) and y.tolist() == [4, 5]
    with pytest.raises(FileNotFoundError):      # MNIST is not looked for in the cache
        gu.mnist.load_images("mnist", train=False, root=tmp_path / "readonly", download=False)


def test_tensor_batches_with_labels_keep_pairs_together(device):
    x = torch.arange(10, device=device).float().view(10, 1)
    y = torch.arange(10, device=device) * 10
    for xb, yb in gu.TensorBatches(x, 4, labels=y):
        assert xb.shape == (4, 1) and torch.equal(xb.view(-1).long() * 10, yb)
    for bad in (y[:5], y.float(), y.tolist()):
        with pytest.raises(ValueError, match="labels (y )?must be an integer tensor"):
            gu.TensorBatches(x, 4, labels=bad)
