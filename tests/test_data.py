"""gan_utils.data: toy samplers, minibatches and the offline-safe image loader."""
import gzip
import math
import os

import numpy as np
import pytest
import torch

import gan_utils as gu
from gan_utils import data as gdata

SHARED_MNIST = gu.data_root() / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"


def write_idx(path, array):
    """Write a uint8 array in IDX format (the generated fixture stands in for MNIST)."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    """A fake MNIST test split (20 images) in <tmp>/MNIST/raw, decompressed like torchvision's."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(20) % 10)
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
    assert 0.05 < gu.mean_line_distance(noisy, 0.5, 1.0) < 0.12
    assert gu.ring_centers(8).shape == (8, 2) and torch.allclose(gu.ring_centers(8).norm(dim=1), torch.tensor(2.0))
    assert gu.grid_centers(5).shape == (25, 2)
    assert gu.sample_ring(100).shape == gu.sample_grid(100).shape == (100, 2)
    u = gu.sample_noise(1000, 3, "uniform")
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
    assert gu.read_idx(tmp_path / "x-idx3-ubyte").shape == (4, 28, 28)
    (tmp_path / "cut").write_bytes((tmp_path / "x-idx3-ubyte").read_bytes()[:500])
    with pytest.raises(ValueError, match="truncated"):
        gu.read_idx(tmp_path / "cut")


def test_load_images_from_fixture_scales(tiny_mnist):
    x, y, info = gu.load_images("mnist", train=False, root=tiny_mnist, download=False)
    assert x.shape == (20, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 <= x.min() and x.max() <= 1 and info == {"split": "test", "n": 20, "root": str(tiny_mnist)}
    x2, _, _ = gu.load_images("mnist", train=False, root=tiny_mnist, scale="-11", limit=5, download=False)
    assert x2.shape[0] == 5 and x2.min() >= -1 and x2.max() <= 1
    assert torch.allclose(x2, x[:5] * 2 - 1)


def test_missing_train_split_falls_back_to_test_with_a_warning(tiny_mnist, monkeypatch, capsys):
    monkeypatch.setattr(gdata, "_download", no_network)
    with pytest.warns(UserWarning, match="Falling back to the 10,000-image TEST split"):
        x, _, info = gu.load_images("mnist", train=True, root=tiny_mnist)
    assert info["split"] == "test" and len(x) == 20
    assert "TEST split" in capsys.readouterr().out


def test_no_data_offline_raises_an_error_that_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setattr(gdata, "_download", no_network)
    with pytest.raises(FileNotFoundError, match="GAN_DATA_DIR") as err:
        gu.load_images("mnist", train=True, root=tmp_path)
    assert str(tmp_path / "MNIST" / "raw") in str(err.value) and "download=True" in str(err.value)
    with pytest.raises(ValueError, match="unknown dataset"):
        gu.load_images("cifar", root=tmp_path)
    with pytest.raises(ValueError, match="scale"):
        gu.load_images("mnist", root=tmp_path, scale="0-255")


def test_download_has_a_time_limit(tmp_path, monkeypatch):
    import socket
    seen = {}

    class FakeMNIST:
        def __init__(self, root, train, download):
            seen["timeout"] = socket.getdefaulttimeout()
            raise OSError("offline")

    monkeypatch.setattr("torchvision.datasets.MNIST", FakeMNIST)
    with pytest.raises(FileNotFoundError):
        gu.load_images("mnist", train=False, root=tmp_path)
    assert seen["timeout"] == gdata.DOWNLOAD_TIMEOUT_S and socket.getdefaulttimeout() is None


def test_corrupted_gz_fails_its_md5_check(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.zeros(2))
    with pytest.raises(ValueError, match="md5"):
        gu.load_images("mnist", train=False, root=tmp_path, download=False)


def test_data_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("GAN_DATA_DIR", str(tmp_path))
    assert gu.data_root() == tmp_path
    assert gu.data_root("elsewhere") == gdata.Path("elsewhere")
    monkeypatch.delenv("GAN_DATA_DIR")
    assert gu.data_root() == gdata.REPO_DATA_DIR


@pytest.mark.skipif(not SHARED_MNIST.exists(), reason="the offline MNIST test split is not in the data root")
def test_real_mnist_test_split_loads_offline(monkeypatch):
    """The known trap: torchvision insists on all four files; the loader needs only two."""
    monkeypatch.setattr(gdata, "_download", no_network)
    with pytest.warns(UserWarning, match="TEST split"):
        x, y, info = gu.load_images("mnist", train=True)
    assert x.shape == (10000, 1, 28, 28) and info["split"] == "test"
    assert sorted(y.unique().tolist()) == list(range(10))
    assert abs(x.mean().item() - 0.1325) < 0.005   # MNIST's well-known mean intensity


def test_install_debian_fashion_mnist(tmp_path):
    src = tmp_path / "debian"
    src.mkdir()
    write_idx(src / "t10k-images-idx3-ubyte.gz", np.full((3, 28, 28), 255))
    write_idx(src / "t10k-labels-idx1-ubyte.gz", [1, 2, 3])
    raw = gu.install_debian_fashion_mnist(tmp_path / "root", source=src)
    assert (raw / "t10k-images-idx3-ubyte").exists()
    x, y, _ = gu.load_images("fashion_mnist", train=False, root=tmp_path / "root", download=False)
    assert x.shape == (3, 1, 28, 28) and x.min() == 1 and y.tolist() == [1, 2, 3]
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        gu.install_debian_fashion_mnist(tmp_path, source=tmp_path / "nowhere")
