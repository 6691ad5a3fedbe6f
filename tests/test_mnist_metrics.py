"""Tests of the MNIST evaluation in gan_utils: the classifier, class histograms, the Fréchet
distance, the Parzen-window estimate of Goodfellow et al. 2014 and the data protocol."""
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import gan_utils
from gan_utils import classifier as clf
from gan_utils import metrics
from gan_utils import mnist as gmnist

MNIST_FULL = Path(__file__).resolve().parent.parent.parent / "shared" / "mnist-full"  # as conftest.py finds it


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def split():
    """The protocol's data, or a skip when no MNIST files are available."""
    try:
        return gan_utils.mnist_split()
    except FileNotFoundError as exc:
        pytest.skip(f"no MNIST data (set GAN_DATA_DIR to a folder with MNIST/raw): {str(exc)[:120]}")


@pytest.fixture(scope="module")
def classifier(split):
    try:
        return clf.load_classifier(split, train_if_missing=False, verbose=False)
    except FileNotFoundError:
        pytest.skip(f"no classifier weights for the {split['protocol']} protocol: "
                    f"run python scripts/train_classifier.py")


def _write_idx(path, array, monkeypatch):
    """An uncompressed IDX file (unsigned bytes), MNIST's format, registered as the published file."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())
    monkeypatch.setitem(gmnist.MNIST_MD5, path.name, hashlib.md5(path.read_bytes()).hexdigest())


def _tiny_split(n=64, protocol="offline"):
    """A synthetic split (images in [0, 1]) for tests that must not need MNIST or train long."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10
    return {"protocol": protocol, "note": "synthetic", "x_train": x, "y_train": y,
            "x_valid": x[:8], "y_valid": y[:8], "x_test": x[8:16], "y_test": y[8:16]}


def _image_keys(images):
    return {bytes((img * 255).round().to(torch.uint8).numpy().tobytes()) for img in images}


# ----------------------------------------------------------------------------- the classifier
def test_shipped_weights_match_their_checksum():
    for protocol, digest in clf.SHIPPED_SHA256.items():
        path = clf.WEIGHTS_DIR / f"mnist_cnn_{protocol}.pt"
        if path.is_file():
            assert clf.sha256(path) == digest
            state = torch.load(path, weights_only=True)
            clf.MNISTClassifier().load_state_dict(state)


def test_classifier_accuracy_on_images_it_never_saw(split, device):
    model = clf.load_classifier(split, device=device, train_if_missing=False, verbose=False)
    x, y = clf.held_out(split)
    if split["protocol"] == "offline":      # both parts index the test file; the paper's index two files
        assert not set(split["idx_train"].tolist()) & set(split["idx_test"].tolist())
    acc = clf.accuracy(model, x.to(device), y.to(device))
    assert acc >= clf.MIN_ACCURACY[split["protocol"]], acc


def test_real_digits_cover_all_modes_and_are_close_to_themselves(split, classifier, device):
    model = classifier.to(device)
    x_test, x_train = split["x_test"].to(device), split["x_train"][:len(split["x_test"])].to(device)
    counts = metrics.class_histogram(x_test, model)
    m = gan_utils.histogram_metrics(counts)
    assert m["modes_covered"] == 10 and m["kl_to_uniform"] < 0.05
    f_test = gan_utils.classifier_features(x_test, model)
    inverted = gan_utils.frechet_distance(gan_utils.classifier_features(1 - x_test, model), f_test)
    real_vs_real = gan_utils.frechet_distance(gan_utils.classifier_features(x_train, model), f_test)
    assert real_vs_real < 0.2 * inverted  # inverted digits are far from digits
    classifier.cpu()


@pytest.mark.skipif(not (MNIST_FULL / "MNIST" / "raw").is_dir(), reason=f"all of MNIST is not at {MNIST_FULL}")
def test_paper_protocol_uses_the_shipped_weights_at_992(capsys):
    """On the full root: train[0:50000] / train[50000:51000] / the 10,000 test images, and the
    shipped paper-protocol classifier (no training) at 99.2% or better on those 10,000."""
    s = gan_utils.mnist_split(root=MNIST_FULL, download=False)
    assert s["protocol"] == "paper" and s["idx_train"].tolist() == list(range(50000))
    assert s["idx_valid"].tolist() == list(range(50000, 51000)) and len(s["x_test"]) == 10000
    model = clf.load_classifier(s, train_if_missing=False, verbose=True)
    assert str(clf.WEIGHTS_DIR / "mnist_cnn_paper.pt") in capsys.readouterr().out
    assert clf.accuracy(model, *clf.held_out(s)) >= 0.992


def test_import_layout_has_no_cycle():
    """mnist_split lives in mnist.py; classifier never imports metrics, and metrics no longer
    imports classifier or re-exports mnist_split (the caller passes the classifier in).
    The whole package's import graph is checked in test_repository.py."""
    source = Path(clf.__file__).read_text()
    assert "from .metrics" not in source and "import metrics" not in source
    assert "classifier" not in {n.split(".")[-1] for n in _relative_imports(metrics.__file__)}
    assert gan_utils.mnist_split is gmnist.mnist_split and not hasattr(metrics, "mnist_split")
    assert gan_utils.load_classifier is clf.load_classifier


def _relative_imports(path):
    import ast

    tree = ast.parse(Path(path).read_text())
    return [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]


# ----------------------------------------------------------------------------- bad input
def _tanh_images():
    return torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("score", ["parzen", "frechet", "histogram", "features", "accuracy"])
@pytest.mark.parametrize("bad", ["tanh range", "nan"])
def test_scores_refuse_images_outside_0_1_and_nan(score, bad, device):
    model = clf.MNISTClassifier().to(device).eval()
    x = _tanh_images().to(device)
    if bad == "nan":
        x = (x + 1) / 2
        x[3, 0, 5, 5] = float("nan")
    good = torch.rand(20, 1, 28, 28, device=device)
    call = {"parzen": lambda: gan_utils.parzen_score(x, good, good),
            "frechet": lambda: gan_utils.frechet_distance(gan_utils.classifier_features(x, model), good.flatten(1)),
            "histogram": lambda: metrics.class_histogram(x, model),
            "features": lambda: gan_utils.classifier_features(x, model),
            "accuracy": lambda: clf.accuracy(model, x, torch.zeros(20, dtype=torch.long, device=device))}[score]
    with pytest.raises(ValueError) as err:
        call()
    if bad == "nan":
        assert "NaN" in str(err.value)
    else:
        assert "[0, 1]" in str(err.value) and "(x + 1) / 2" in str(err.value)
        lo, hi = float(x.min()), float(x.max())
        assert f"[{lo:.3f}, {hi:.3f}]" in str(err.value)  # the range found


@pytest.mark.parametrize("case", ["histogram of NaN", "0 images", "NaN feature", "0 centres", "sigma 0",
                                  "sigma < 0"])
def test_degenerate_inputs_get_clear_errors(case, device):
    x = torch.rand(5, 16, device=device)
    nan_feature = torch.randn(50, 4, device=device)
    nan_feature[7, 2] = float("nan")
    match, call = {
        "histogram of NaN": ("finite", lambda: gan_utils.histogram_metrics([float("nan")] * 10)),
        "0 images": ("no images", lambda: metrics.class_histogram(torch.zeros(0, 1, 28, 28, device=device),
                                                                    clf.MNISTClassifier().to(device))),
        "NaN feature": ("NaN", lambda: gan_utils.frechet_distance(torch.randn(50, 4, device=device), nan_feature)),
        "0 centres": ("no images", lambda: metrics.parzen_log_likelihoods(x[:0], x, [0.2])),
        "sigma 0": ("sigmas must be positive", lambda: gan_utils.parzen_score(x, x, x, sigmas=[0.0, 0.5])),
        "sigma < 0": ("sigmas must be positive", lambda: gan_utils.parzen_score(x, x, x, sigmas=[-0.1])),
    }[case]
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- the cache
def _use_tmp_weights(monkeypatch, tmp_path):
    """No shipped weights: the cache in tmp_path/cache is all load_classifier can use."""
    monkeypatch.setattr(clf, "WEIGHTS_DIR", tmp_path / "no-weights")
    return tmp_path / "cache"


def test_cached_weights_are_integrity_checked(tmp_path, monkeypatch):
    cache_dir = _use_tmp_weights(monkeypatch, tmp_path)
    split, path = _tiny_split(), clf.cache_path("offline", cache_dir)
    assert tmp_path / "cache" in path.parents
    path.parent.mkdir(parents=True)
    torch.save(clf.MNISTClassifier().state_dict(), path)  # random weights, no record
    with pytest.raises(ValueError, match="no valid record"):
        clf.load_classifier(split, train_if_missing=False, cache_dir=cache_dir)
    model = clf.MNISTClassifier()
    info = {"accuracy": 0.99, "protocol": "offline", "n_train": 8000, "n_held_out": 2000, "trained_on": "test"}
    clf._save_cached(model, info, path)
    loaded = clf.load_classifier(split, train_if_missing=False, cache_dir=cache_dir, verbose=False)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    torch.save(clf.MNISTClassifier().state_dict(), path)  # other random weights behind a valid record
    with pytest.raises(ValueError, match="sha256"):
        clf.load_classifier(split, train_if_missing=False, cache_dir=cache_dir)
    clf._save_cached(model, dict(info, accuracy=0.097), path)  # a record of a useless classifier
    with pytest.raises(ValueError, match="0.0970"):
        clf.load_classifier(split, train_if_missing=False, cache_dir=cache_dir)
    clf._save_cached(model, info, clf.cache_path("paper", cache_dir))  # the offline record, renamed
    with pytest.raises(ValueError, match="offline protocol .* paper protocol needs 0.992"):
        clf.load_classifier(_tiny_split(protocol="paper"), train_if_missing=False, cache_dir=cache_dir)
    assert clf.cache_path("paper") == gmnist.user_cache_dir() / "classifier" / "mnist_cnn_paper.pt"


def test_training_a_classifier_is_announced_with_a_progress_bar(tmp_path, monkeypatch, capsys, device):
    cache_dir = _use_tmp_weights(monkeypatch, tmp_path)
    with pytest.warns(UserWarning, match="not reused from the cache"):  # 64 random images: a useless classifier
        model = clf.load_classifier(_tiny_split(), device=device, cache_dir=cache_dir, verbose=False)  # as in 03
    out, err = capsys.readouterr()
    assert "training one now" in out and "expected time" in out and str(clf.cache_path("offline", cache_dir)) in out
    assert "training the MNIST classifier" in err and "100%" in err  # tqdm's bar, with its time estimate
    assert next(model.parameters()).device.type == device
    record = json.loads(clf.cache_path("offline", cache_dir).with_suffix(".json").read_text())
    assert record["sha256"] == clf.sha256(clf.cache_path("offline", cache_dir)) and record["n_train"] == 64


# ----------------------------------------------------------------------------- class histogram
def test_histogram_metrics_on_constructed_histograms():
    uniform = gan_utils.histogram_metrics([100] * 10)
    assert uniform["modes_covered"] == 10 and uniform["kl_to_uniform"] == pytest.approx(0, abs=1e-12)
    one = gan_utils.histogram_metrics([0, 0, 0, 500, 0, 0, 0, 0, 0, 0])
    assert one["modes_covered"] == 1 and one["kl_to_uniform"] == pytest.approx(math.log(10))
    two = gan_utils.histogram_metrics([50, 50, 0, 0, 0, 0, 0, 0, 0, 0])
    assert two["modes_covered"] == 2 and two["kl_to_uniform"] == pytest.approx(math.log(5))
    rare = gan_utils.histogram_metrics([1] + [111] * 9)  # 0.1% of the samples: below the 1% bar
    assert rare["modes_covered"] == 9
    p = np.array([0.4, 0.3, 0.2, 0.1])
    assert gan_utils.histogram_metrics(p * 1000)["kl_to_uniform"] == pytest.approx(float(np.sum(p * np.log(4 * p))))
    with pytest.raises(ValueError):
        gan_utils.histogram_metrics([0, 0, 0])


# ----------------------------------------------------------------------------- Fréchet distance
def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift(device):
    g = torch.Generator().manual_seed(0)
    a = (torch.randn(2000, 8, generator=g) @ torch.randn(8, 8, generator=g)).to(device)
    assert gan_utils.frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    shifts = [0.1, 0.5, 1.0, 2.0]
    d = [gan_utils.frechet_distance(a, a + s) for s in shifts]
    assert d == sorted(d)
    assert d[-1] == pytest.approx(8 * 2.0 ** 2, rel=1e-6)  # same covariance: ||shift||^2
    # against the textbook formula with scipy's matrix square root
    from scipy import linalg
    b = (torch.randn(2000, 8, generator=g) * 2 + 1).to(device)
    a64, b64 = a.double().cpu().numpy(), b.double().cpu().numpy()
    s_a, s_b = np.cov(a64, rowvar=False), np.cov(b64, rowvar=False)
    ref = ((a64.mean(0) - b64.mean(0)) ** 2).sum() + np.trace(s_a + s_b - 2 * linalg.sqrtm(s_a @ s_b).real)
    assert gan_utils.frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)


# ----------------------------------------------------------------------------- Parzen window
def _brute_force_parzen(centres, x, sigma):
    """parzen_ll.py written out with Python loops: log mean_j N(x; mu_j, sigma^2 I)."""
    out = []
    for xi in x.tolist():
        terms = [-0.5 * sum(((a - b) / sigma) ** 2 for a, b in zip(xi, mu)) for mu in centres.tolist()]
        out.append(math.log(sum(math.exp(t) for t in terms) / len(terms))
                   - len(xi) * math.log(sigma * math.sqrt(2 * math.pi)))
    return out


def test_parzen_matches_brute_force_on_a_tiny_case(device):
    g = torch.Generator().manual_seed(1)
    centres, x = torch.rand(7, 5, generator=g), torch.rand(4, 5, generator=g)
    sigmas = [0.3, 1.0]
    got = metrics.parzen_log_likelihoods(centres.to(device), x.to(device), sigmas, batch_size=3)
    for j, s in enumerate(sigmas):
        assert got[:, j].tolist() == pytest.approx(_brute_force_parzen(centres, x, s), rel=1e-9)


def test_parzen_score_protocol_and_stability():
    g = torch.Generator().manual_seed(2)
    centres, valid, test = (torch.rand(n, 1, 4, 4, generator=g) for n in (50, 20, 30))
    r = gan_utils.parzen_score(centres, valid, test, batch_size=7)
    v = metrics.parzen_log_likelihoods(centres, valid, metrics.PARZEN_SIGMAS).mean(0)
    assert r["sigma"] == pytest.approx(metrics.PARZEN_SIGMAS[int(v.argmax())])
    assert len(r["sigmas"]) == 10 and r["sigmas"][0] == pytest.approx(0.1) and r["sigmas"][-1] == pytest.approx(1)
    ll = np.array(_brute_force_parzen(centres.flatten(1), test.flatten(1), r["sigma"]))
    assert r["ll"] == pytest.approx(ll.mean(), rel=1e-9)
    assert r["se"] == pytest.approx(ll.std() / math.sqrt(len(ll)), rel=1e-9)
    # far from every centre, exp() underflows in a naive computation; the estimate stays finite
    far = metrics.parzen_log_likelihoods(torch.zeros(3, 784), torch.ones(2, 784), [0.1])
    assert torch.isfinite(far).all()
    assert far[0, 0].item() == pytest.approx(-784 / (2 * 0.01) - 784 * math.log(0.1 * math.sqrt(2 * math.pi)))


# ----------------------------------------------------------------------------- the protocol
def test_offline_protocol_never_scores_a_training_image(split):
    if split["protocol"] != "offline":
        pytest.skip("the offline protocol applies without the MNIST training split")
    idx = {k: set(split[f"idx_{k}"].tolist()) for k in ("train", "valid", "test")}
    assert [len(idx[k]) for k in idx] == [8000, 1000, 1000]
    assert not idx["train"] & idx["test"] and not idx["train"] & idx["valid"] and not idx["valid"] & idx["test"]
    assert not _image_keys(split["x_train"]) & _image_keys(split["x_test"])  # not even a pixel-identical copy
    again = gan_utils.mnist_split()
    assert torch.equal(again["idx_test"], split["idx_test"])  # fixed, not reshuffled per call


def test_paper_protocol_on_a_synthetic_data_root(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.RandomState(0)
    train = rng.randint(0, 256, (51000, 28, 28))
    train[:, 0, 0], train[:, 0, 1] = np.arange(51000) % 256, np.arange(51000) // 256  # tag each image
    for prefix, images in (("train", train), ("t10k", rng.randint(0, 256, (100, 28, 28)))):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images, monkeypatch)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.randint(0, 10, len(images)), monkeypatch)
    s = gan_utils.mnist_split(root=tmp_path, download=False)
    assert s["protocol"] == "paper" and s["source"] == {"train": "train", "valid": "train", "test": "test"}
    assert s["idx_train"].tolist() == list(range(50000)) and s["idx_valid"].tolist() == list(range(50000, 51000))
    assert len(s["x_test"]) == 100
    tag = (s["x_valid"][:, 0, 0, 0] * 255).round() + 256 * (s["x_valid"][:, 0, 0, 1] * 255).round()
    assert tag.long().tolist() == list(range(50000, 51000))


# ----------------------------------------------------------------------------- notebook 03's scores
def test_nearest_neighbours_matches_brute_force_and_finds_copies(device):
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(300, 1, 28, 28, generator=g)
    x = torch.cat([ref[[5, 17]], torch.rand(20, 1, 28, 28, generator=g)]).to(device)
    dist, index = gan_utils.nearest_neighbours(x, ref, batch_size=7)
    brute = torch.cdist(x.cpu().reshape(len(x), -1).double(), ref.reshape(300, -1).double(),
                        compute_mode="donot_use_mm_for_euclid_dist")
    assert torch.equal(index, brute.argmin(1))
    assert torch.allclose(dist, brute.min(1).values, atol=1e-9)
    assert index[:2].tolist() == [5, 17] and dist[:2].abs().max() < 1e-12     # copies are found, at distance 0
    with pytest.raises(ValueError, match="values per image"):
        gan_utils.nearest_neighbours(torch.rand(3, 10), ref)


def test_generator_scores_and_evaluate_generator_on_a_tiny_split(classifier, device):
    split = _tiny_split(n=200)
    gan_utils.seed_everything(0)
    G = gan_utils.MLPGenerator(noise_dim=8, widths=(16,)).to(device)
    z = torch.randn(50, 8, device=device)
    f_real = gan_utils.classifier_features(split["x_valid"], classifier)
    s = gan_utils.generator_scores(G, z, f_real, classifier)
    assert set(s) == {"modes", "kl", "frechet"} and 1 <= s["modes"] <= 10 and s["frechet"] > 0
    e = gan_utils.evaluate_generator(G, split, classifier, n=64, n_valid=8)
    assert e["samples"].shape == (64, 1, 28, 28) and e["counts"].sum() == 64
    assert e["parzen"]["n_centers"] == 64 and e["parzen"]["n_test"] == 8
    assert e["fd"]["frechet"] > e["fd"]["real_vs_real"] >= 0           # noise is farther from digits than digits
    again = gan_utils.evaluate_generator(G, split, classifier, n=64, n_valid=8)
    assert again["counts"].tolist() == e["counts"].tolist()               # fixed noise: the same samples


def test_fashion_classifier_is_shipped_and_accurate(device):
    """Notebook 05 scores Fashion-MNIST samples with a classifier of its own (same CNN), shipped."""
    try:
        split = gan_utils.mnist_split(dataset="fashion_mnist", download=False)
    except FileNotFoundError as exc:
        pytest.skip(f"Fashion-MNIST is not installed: {exc}")
    if split["protocol"] != "fashion_paper":
        pytest.skip("only Fashion-MNIST's test split is installed")
    model = clf.load_classifier(split, device=device, train_if_missing=False, verbose=False)
    acc = clf.accuracy(model, split["x_test"].to(device), split["y_test"].to(device))
    assert acc >= clf.MIN_ACCURACY["fashion_paper"] >= 0.90, acc


def test_evaluation_summary_is_json_ready_and_keeps_the_table_numbers():
    import json
    import numpy as np
    e = {"hist": {"modes_covered": 9, "kl_to_uniform": 0.25}, "counts": np.array([3, 0, 7]),
         "fd": {"frechet": 12.5, "real_vs_real": 1.25}, "parzen": {"ll": 100.0, "se": 2.0, "sigma": 0.2},
         "samples": torch.zeros(2, 1, 28, 28)}
    s = gan_utils.evaluation_summary(e)
    assert json.loads(json.dumps(s)) == {"modes": 9, "kl": 0.25, "counts": [3, 0, 7], "frechet": 12.5,
                                         "real_vs_real": 1.25, "parzen": 100.0, "parzen_se": 2.0, "sigma": 0.2}
