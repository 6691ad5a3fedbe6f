"""Issue 28 (data, metrics, input validation) and issue 25 items 4 and 7: Fashion-MNIST integrity and download,
eval mode restored by the classifier, clear errors for bad metric inputs, no float64 on a device without it."""
import gzip
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

import gan_utils as gu
from gan_utils import classifier as clf
from gan_utils import metrics
from gan_utils import mnist as gmnist
from tests.test_data import register_md5, write_idx

DEBIAN = gmnist.DEBIAN_FASHION_DIR
SHARED_MNIST = next((p for p in (Path(__file__).resolve().parent.parent.parent / "shared" / d / "MNIST" / "raw"
                                 for d in ("mnist-full", "data")) if p.is_dir()), None)
needs_debian = pytest.mark.skipif(not (DEBIAN / "t10k-images-idx3-ubyte.gz").is_file(),
                                  reason="apt-get install dataset-fashion-mnist")
T10K = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def fashion_raw(root, gz=True, prefixes=("t10k",), source=DEBIAN):
    """<root>/FashionMNIST/raw with links to the official (Debian) files of the given splits."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix in prefixes:
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            os.symlink(source / f"{prefix}-{kind}.gz", raw / f"{prefix}-{kind}{'.gz' if gz else ''}")
    return raw


# ----------------------------------------------------------------------------- 28 High 4, Medium 13: integrity
@needs_debian
def test_fashion_md5s_are_those_of_the_official_files():
    """The table holds the md5s of the decompressed official files (Debian ships zalandoresearch's data)."""
    for name, md5 in gmnist.FASHION_MNIST_MD5.items():
        assert hashlib.md5(gzip.open(DEBIAN / f"{name}.gz").read()).hexdigest() == md5, name


@needs_debian
def test_fashion_with_400_overwritten_bytes_is_refused(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    data = bytearray(gzip.open(DEBIAN / "t10k-images-idx3-ubyte.gz").read())
    data[5000:5400] = bytes(400)
    (raw / "t10k-images-idx3-ubyte").write_bytes(bytes(data))
    os.symlink(DEBIAN / "t10k-labels-idx1-ubyte.gz", raw / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match="md5 .* corrupt, truncated") as err:
        gmnist.load_images("fashion_mnist", train=False, root=tmp_path, download=False)
    assert str(raw / "t10k-images-idx3-ubyte") in str(err.value)


@pytest.mark.skipif(SHARED_MNIST is None, reason="no MNIST test split in ../shared")
def test_mnist_digits_in_the_fashion_folder_are_refused(tmp_path):
    fashion_raw(tmp_path, source=SHARED_MNIST)
    with pytest.raises(ValueError, match="it holds MNIST's t10k-images-idx3-ubyte"):
        gmnist.load_images("fashion_mnist", train=False, root=tmp_path, download=False)


@needs_debian
def test_a_corrupt_plain_file_beside_a_good_gz_gives_way_to_the_gz(tmp_path):
    raw = fashion_raw(tmp_path)
    good, _, _ = gmnist.load_images("fashion_mnist", train=False, root=tmp_path, download=False)
    (raw / "t10k-images-idx3-ubyte").write_bytes(gzip.open(DEBIAN / "t10k-images-idx3-ubyte.gz").read()[:-100])
    with pytest.warns(UserWarning, match="t10k-images-idx3-ubyte: its decompressed bytes .* Using .*ubyte.gz"):
        x, _, _ = gmnist.load_images("fashion_mnist", train=False, root=tmp_path, download=False)
    assert torch.equal(x, good)


@needs_debian
def test_swapped_fashion_train_and_test_files_are_named(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for a, b in (("train", "t10k"), ("t10k", "train")):
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            os.symlink(DEBIAN / f"{b}-{kind}.gz", raw / f"{a}-{kind}.gz")
    with pytest.raises(ValueError, match="it holds Fashion-MNIST's t10k-images-idx3-ubyte .files swapped"):
        gu.mnist_split(root=tmp_path, download=False, dataset="fashion_mnist")


def test_a_short_training_split_is_a_clear_error_not_an_index_error(tmp_path, monkeypatch):
    raw = tmp_path / "FashionMNIST" / "raw"
    for prefix, n in (("train", 100), ("t10k", 30)):
        paths = [raw / f"{prefix}-{kind}-ubyte" for kind in ("images-idx3", "labels-idx1")]
        raw.mkdir(parents=True, exist_ok=True)
        write_idx(paths[0], np.zeros((n, 28, 28)))
        write_idx(paths[1], np.arange(n) % 10)
        register_md5(monkeypatch, *paths, table=gmnist.FASHION_MNIST_MD5)
    with pytest.raises(ValueError, match="has 100 images, not 60,000: are the train-. and t10k-. files swapped"):
        gu.mnist_split(root=tmp_path, download=False, dataset="fashion_mnist")


def _fake_debian(tmp_path, monkeypatch):
    src = tmp_path / "debian"
    src.mkdir()
    write_idx(src / "t10k-images-idx3-ubyte.gz", np.full((3, 28, 28), 9))
    write_idx(src / "t10k-labels-idx1-ubyte.gz", [1, 2, 3])
    register_md5(monkeypatch, *src.iterdir(), table=gmnist.FASHION_MNIST_MD5)
    return src


def test_install_replaces_a_truncated_leftover_and_keeps_a_good_file(tmp_path, monkeypatch):
    src = _fake_debian(tmp_path, monkeypatch)
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    full = gzip.open(src / "t10k-images-idx3-ubyte.gz").read()
    (raw / "t10k-images-idx3-ubyte").write_bytes(full[:1000])          # a full disk's leftover
    gmnist.install_debian_fashion_mnist(tmp_path / "root", source=src)
    assert (raw / "t10k-images-idx3-ubyte").read_bytes() == full
    assert sorted(p.name for p in raw.iterdir()) == list(T10K)         # no temporary file left
    x, y, _ = gmnist.load_images("fashion_mnist", train=False, root=tmp_path / "root", download=False)
    assert x.shape == (3, 1, 28, 28) and y.tolist() == [1, 2, 3]
    mtime = (raw / "t10k-labels-idx1-ubyte").stat().st_mtime_ns
    gmnist.install_debian_fashion_mnist(tmp_path / "root", source=src)
    assert (raw / "t10k-labels-idx1-ubyte").stat().st_mtime_ns == mtime


def test_install_that_fails_midway_leaves_nothing(tmp_path, monkeypatch):
    src = _fake_debian(tmp_path, monkeypatch)
    raw = tmp_path / "root" / "FashionMNIST" / "raw"

    def full_disk(fd, mode):
        class Disk:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                os.close(fd)

            def write(self, data):
                os.write(fd, data[:len(data) // 2])
                raise OSError(28, "No space left on device")
        return Disk()
    monkeypatch.setattr(gmnist.os, "fdopen", full_disk)
    with pytest.raises(OSError, match="No space left"):
        gmnist.install_debian_fashion_mnist(tmp_path / "root", source=src)
    assert list(raw.iterdir()) == []
    monkeypatch.undo()
    (src / "t10k-images-idx3-ubyte.gz").write_bytes((src / "t10k-images-idx3-ubyte.gz").read_bytes()[:-20])
    register_md5(monkeypatch, tmp_path / "debian" / "t10k-labels-idx1-ubyte.gz", table=gmnist.FASHION_MNIST_MD5)
    monkeypatch.setitem(gmnist.FASHION_MNIST_MD5, "t10k-images-idx3-ubyte", "0" * 32)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte"):
        gmnist.install_debian_fashion_mnist(tmp_path / "root", source=src)
    assert [p.name for p in raw.iterdir()] == []


# ----------------------------------------------------------------------------- 25 item 4: download Fashion-MNIST
def test_fashion_mnist_downloads_with_torchvision_checked(tmp_path, monkeypatch):
    src = tmp_path / "server"
    src.mkdir()
    write_idx(src / "t10k-images-idx3-ubyte.gz", np.full((12, 28, 28), 200))
    write_idx(src / "t10k-labels-idx1-ubyte.gz", np.arange(12) % 10)
    calls = []

    class FakeFashionMNIST:  # torchvision's class: downloads into <root>/FashionMNIST/raw
        def __init__(self, root, train, download):
            calls.append(download)
            raw = Path(root) / "FashionMNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            for p in src.iterdir():
                shutil.copy(p, raw / p.name)

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    monkeypatch.setattr(gmnist, "user_cache_dir", lambda: tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="expected 8181f5470baa50b63fa0f6fddb340f0a"):  # not the real file
        gmnist.load_images("fashion_mnist", train=False, root=tmp_path / "data")
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    assert list(raw.iterdir()) == []                                          # nothing unchecked kept
    register_md5(monkeypatch, *src.iterdir(), table=gmnist.FASHION_MNIST_MD5)
    x, y, info = gmnist.load_images("fashion_mnist", train=False, root=tmp_path / "data")
    assert x.shape == (12, 1, 28, 28) and info["split"] == "test" and calls == [True, True]
    assert sorted(p.name for p in raw.iterdir()) == sorted(p.name for p in src.iterdir())


@needs_debian
def test_mnist_split_of_downloaded_fashion_mnist_is_the_paper_protocol(tmp_path, monkeypatch):
    class FakeFashionMNIST:  # a download of the four official files
        def __init__(self, root, train, download):
            fashion_raw(Path(root), prefixes=("train", "t10k"))

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    monkeypatch.setattr(gmnist, "user_cache_dir", lambda: tmp_path / "cache")
    split = gu.mnist_split(root=tmp_path / "data", dataset="fashion_mnist")
    assert split["protocol"] == "fashion_paper" and len(split["x_train"]) == 50000 and len(split["x_test"]) == 10000
    assert len(list((tmp_path / "data" / "FashionMNIST" / "raw").glob("*-ubyte.gz"))) == 4


# ----------------------------------------------------------------------------- 28 High 3: eval mode
def test_accuracy_restores_train_mode_when_the_model_raises():
    class Broken(clf.MNISTClassifier):
        def forward(self, x):
            raise RuntimeError("boom")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        clf.accuracy(model, torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long))
    assert model.training and all(m.training for m in model.modules())


def test_a_cached_classifier_with_nan_accuracy_is_refused(tmp_path):
    path = clf.cache_path("offline", tmp_path)
    path.parent.mkdir(parents=True)
    torch.save(clf.MNISTClassifier().state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps({"sha256": clf.sha256(path), "accuracy": math.nan,
                                                     "protocol": "offline"}))
    with pytest.raises(ValueError, match="accuracy nan"):
        clf._check_cached(path, "offline")


# ----------------------------------------------------------------------------- 28 Low: metric inputs
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_checkerboard_score_refuses_nan_and_inf_pixels(bad):
    x = torch.rand(3, 1, 28, 28)
    x[1, 0, 5, 5] = bad
    with pytest.raises(ValueError, match="1 pixels are NaN or infinite"):
        gu.checkerboard_score(x, 4)


def test_checkerboard_score_of_constant_images_is_zero_db():
    """A collapsed G drawing one flat image has no checkerboard: 0 dB, not NaN."""
    score = gu.checkerboard_score(torch.full((4, 1, 28, 28), 0.3), 4)
    assert score["mean_db"] == 0.0 and score["nyquist_db"] == 0.0 and set(score["bins_db"].values()) == {0.0}


@pytest.mark.parametrize("samples, std", [(torch.zeros(0, 2), 0.1), (torch.zeros(5, 2), 0.0),
                                          (torch.zeros(5, 2), -1.0), (torch.zeros(5, 3), 0.1)])
def test_mode_metrics_refuses_no_samples_and_std_not_positive(samples, std):
    with pytest.raises(ValueError, match="mode_metrics: need samples"):
        gu.mode_metrics(samples, gu.ring_centers(8), std)


def test_kl_to_uniform_refuses_negative_counts():
    with pytest.raises(ValueError, match="non-negative"):
        gu.metrics.kl_to_uniform([5, -1, 3])
    assert math.isnan(gu.metrics.kl_to_uniform([0, 0]))


@pytest.mark.parametrize("fn", [metrics.w1_to_gaussian, metrics.ks_to_gaussian])
def test_1d_distances_refuse_2d_points(fn):
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(n, 1\).*got shape \(100, 2\)"):
        fn(torch.randn(100, 2), 0.0, 1.0)


def test_generator_scores_checks_pixels_as_nearest_neighbours_does():
    class TanhG(torch.nn.Module):                          # pixels in [-1, 1], as a Tanh G draws them
        def forward(self, z):
            return torch.tanh(z[:, :1, None, None].expand(-1, 1, 28, 28)).clamp(-1, 1) - 0.5

    G = TanhG()
    classifier = clf.MNISTClassifier().eval()
    z = torch.randn(16, 8)
    with pytest.raises(ValueError, match=r"pixels must be in \[0, 1\]"):
        gu.metrics.nearest_neighbours(gu.generate(G, z), torch.rand(4, 1, 28, 28))
    with pytest.raises(ValueError, match=r"pixels must be in \[0, 1\]"):
        gu.metrics.generator_scores(G, z, torch.randn(20, 64), classifier)


def test_evaluate_generator_scores_a_conditional_generator():
    torch.manual_seed(0)
    G = gu.DCGANGenerator(noise_dim=8, width=8, n_classes=10, pixels="01")
    split = {k: torch.rand(30, 1, 28, 28) for k in ("x_train", "x_valid", "x_test")}
    e = gu.metrics.evaluate_generator(G, split, clf.MNISTClassifier().eval(), n=20, n_valid=10)
    assert e["samples"].shape == (20, 1, 28, 28) and e["counts"].sum() == 20
    G0 = gu.DCGANGenerator(noise_dim=8, width=8, pixels="01")   # unconditional: unchanged
    e0 = gu.metrics.evaluate_generator(G0, split, clf.MNISTClassifier().eval(), n=20, n_valid=10)
    z = torch.randn(20, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(e0["samples"], gu.generate(G0, z))


@pytest.mark.parametrize("n", [1, 0, -3, 2.0, True])
def test_matching_aware_loss_needs_two_classes(n):
    with pytest.raises(ValueError, match="n_classes must be an int >= 2"):
        gu.matching_aware_loss(n)


# ----------------------------------------------------------------------------- 25 item 7: no float64 on MPS
class NoFloat64(torch.Tensor):
    """A CPU tensor standing for one on a device without float64 (MPS): any op that makes a float64 tensor of this
    kind fails; .cpu() and .to('cpu') give a plain CPU tensor."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        to_cpu = func is torch.Tensor.cpu or (func is torch.Tensor.to and any(
            isinstance(a, (str, torch.device)) and torch.device(a).type == "cpu"
            for a in (*args[1:], kwargs.get("device"))))
        if to_cpu:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs).as_subclass(torch.Tensor)
        out = super().__torch_function__(func, types, args, kwargs)
        if isinstance(out, cls) and out.dtype == torch.float64:
            raise AssertionError(f"{func.__name__} made a float64 tensor on a device without float64")
        return out


def test_the_simulated_device_catches_float64():
    x = torch.rand(3).as_subclass(NoFloat64)
    with pytest.raises(AssertionError, match="float64"):
        x.double()
    assert x.cpu().double().dtype == torch.float64


def test_metrics_move_to_the_cpu_before_float64():
    torch.manual_seed(0)
    on = lambda t: t.as_subclass(NoFloat64)                                # noqa: E731
    images, ref = torch.rand(6, 1, 28, 28), torch.rand(5, 1, 28, 28)
    assert gu.checkerboard_score(on(images), 4) == gu.checkerboard_score(images, 4)
    assert torch.equal(metrics.parzen_log_likelihoods(on(ref), on(images), [0.2]),
                       metrics.parzen_log_likelihoods(ref, images, [0.2]))
    d, i = gu.metrics.nearest_neighbours(on(images), on(ref))
    assert torch.equal(d, gu.metrics.nearest_neighbours(images, ref)[0])
    points = torch.randn(50, 2)
    assert gu.mode_metrics(on(points), on(gu.ring_centers(8)), 0.1) == gu.mode_metrics(points, gu.ring_centers(8), 0.1)
    assert metrics.w1_to_gaussian(on(points[:, :1]), 0, 1) == metrics.w1_to_gaussian(points[:, :1], 0, 1)
    classifier = clf.MNISTClassifier().eval()
    assert (gu.metrics.class_histogram(on(images), classifier) == gu.metrics.class_histogram(images, classifier)).all()
    feats = torch.randn(20, 4)
    assert gu.frechet_distance(on(feats), on(feats + 1)) == gu.frechet_distance(feats, feats + 1)
