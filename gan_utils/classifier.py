"""The MNIST evaluation classifier, a small CNN trained on the GAN's 'train' part of `mnist_split` and measured on
images neither saw (paper: the 10,000 test images; offline: the other 2,000). `load_classifier()`: shipped weights
(sha256 checked), else the per-user cache (checked against its .json), else trained now and cached.
scripts/train_classifier.py reproduces the shipped weights; torch.save stores the file's name in the archive:
compare copies by their tensors, not their sha256."""
import hashlib
import json
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checkpoints import save_atomic
from .data import check_pixels
from .mnist import mnist_split, user_cache_dir

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# sha256 of the weights shipped with the package, per protocol (see `mnist_split`).
SHIPPED_SHA256 = {
    "offline": "5f2412005cfe47666c6072f93e77a5f76c2ea73b9fe2e2fc59690067b269c51d",
    "paper": "17ecb4cb7847f42ea851ba619c09839f9677c5b8793ad86e04b2f7bd037595a1",
    "fashion_paper": "1df5a1568a6c6cdb4d3eef4c07ca96cad5cb102321b15699ff6bb974687338f5",
}
# Weights below these held-out accuracies are refused (cached) or reported (trained).
MIN_ACCURACY = {"offline": 0.98, "paper": 0.992, "fashion_paper": 0.90, "fashion_offline": 0.80}
FEATURE_DIM = 64


class MNISTClassifier(nn.Module):
    """A LeNet-style CNN (conv 16, conv 32, Linear -> 64 features, dropout 0.3, Linear -> 10), pixels in [0, 1].
    x: (N, 1, 28, 28) or (N, 784) -> logits (N, 10); `features(x)` -> (N, 64)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Linear(32 * 7 * 7, FEATURE_DIM), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, 10))

    def features(self, x):
        """The penultimate layer (after ReLU), the space of the Fréchet distance: (N, 64)."""
        if x.ndim == 2 or x.shape[1:] != (1, 28, 28):
            if x[0].numel() != 784:
                raise ValueError(f"MNISTClassifier expects (N, 1, 28, 28) or (N, 784), got {tuple(x.shape)}")
            x = x.reshape(-1, 1, 28, 28)
        return self.conv(x)

    def forward(self, x):
        return self.head(self.features(x))


def _shift(x, max_shift=2):
    """Random translation by up to `max_shift` pixels per image (zero padding). x: (B, 1, 28, 28)."""
    b, s = len(x), 28
    padded = F.pad(x, (max_shift,) * 4)[:, 0]
    oy, ox = (torch.randint(0, 2 * max_shift + 1, (2, b, 1), device=x.device))
    rows = (oy + torch.arange(s, device=x.device))[:, :, None]
    cols = (ox + torch.arange(s, device=x.device))[:, None, :]
    return padded[torch.arange(b, device=x.device)[:, None, None], rows, cols].unsqueeze(1)


@torch.no_grad()
def accuracy(model, images, labels, batch_size=1000):
    """Fraction of `images` (N, 1, 28, 28), pixels in [0, 1], whose predicted class equals `labels` (N,)."""
    check_pixels(images, "accuracy")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need as many labels as images (and at least one), got {len(images)} and {len(labels)}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        correct = sum((model(images[i:i + batch_size].to(device)).argmax(1).cpu()
                       == labels[i:i + batch_size].cpu()).sum().item() for i in range(0, len(images), batch_size))
    finally:
        model.train(was_training)
    return correct / len(images)


def held_out(split):
    """(images, labels) the classifier never trains on: offline valid + test, else the test images."""
    if split["protocol"] == "offline":
        return torch.cat([split["x_valid"], split["x_test"]]), torch.cat([split["y_valid"], split["y_test"]])
    return split["x_test"], split["y_test"]


def train_classifier(split=None, epochs=10, batch_size=64, lr=1e-3, seed=0, device="cpu", verbose=True, max_shift=2):
    """Train `MNISTClassifier` on split['x_train'] (N, 1, 28, 28) (Adam, random shifts up to `max_shift`, lr halved
    each epoch of the second half); accuracy on `held_out(split)`. Returns (model in eval mode, info dict)."""
    split = split if split is not None else mnist_split()
    torch.manual_seed(seed)
    x, y = split["x_train"].to(device), split["y_train"].to(device)
    check_pixels(x, "train_classifier")
    model = MNISTClassifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(x) // batch_size)
    name = "Fashion-MNIST" if split.get("dataset") == "fashion_mnist" else "MNIST"
    bar = tqdm(total=steps, disable=not verbose, unit="batch", desc=f"training the {name} classifier")
    start = time.time()
    for epoch in range(epochs):
        if epoch >= epochs // 2:
            for group in opt.param_groups:
                group["lr"] *= 0.5
        order = torch.randperm(len(x), device=device)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(_shift(x[idx], max_shift) if max_shift else x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update()
        bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{loss.item():.4f}")
    bar.close()
    model.eval()
    xh, yh = held_out(split)
    info = {"protocol": split["protocol"], "n_train": len(x), "n_held_out": len(xh),
            "accuracy": accuracy(model, xh, yh), "seconds": time.time() - start, "trained_on": split["note"]}
    return model, info


def sha256(path):
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cache_path(protocol, cache_dir=None):
    """<cache_dir or user_cache_dir()>/classifier/mnist_cnn_<protocol>.pt (its .json: sha256, accuracy)."""
    return Path(cache_dir or user_cache_dir()) / "classifier" / f"mnist_cnn_{protocol}.pt"


def _check_cached(path, protocol):
    """`path`, or ValueError unless it matches its .json's sha256, protocol and MIN_ACCURACY."""
    sidecar = path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
        expected, acc = meta["sha256"], float(meta["accuracy"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cached classifier {path} has no valid record {sidecar} ({exc})") from exc
    if sha256(path) != expected:
        raise ValueError(f"cached classifier {path} has sha256 {sha256(path)}, its record says {expected}")
    if meta.get("protocol") != protocol or not acc >= MIN_ACCURACY[protocol]:   # NaN is refused too
        raise ValueError(f"cached classifier {path} is for the {meta.get('protocol')} protocol with accuracy "
                         f"{acc:.4f}; the {protocol} protocol needs {MIN_ACCURACY[protocol]}")
    return path


def _save_cached(model, info, path):
    """Write the weights, then their record (.json), each atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(path, lambda f: torch.save(model.state_dict(), f))
    record = {"sha256": sha256(path), "accuracy": info["accuracy"], "protocol": info["protocol"],
              "n_train": info["n_train"], "n_held_out": info["n_held_out"], "trained_on": info["trained_on"]}
    save_atomic(path.with_suffix(".json"), lambda f: f.write(json.dumps(record, indent=1).encode()))


def _train_and_cache(split, device, cached):
    """Train the protocol's classifier now (never silently) and cache it (in memory only if that fails)."""
    print(f"No shipped classifier weights for the {split['protocol']} protocol: training one now on "
          f"{len(split['x_train'])} images ({split['note']}); the bar shows the expected time. Cached in {cached}.")
    model, info = train_classifier(split, device=device, verbose=True)
    print(f"held-out accuracy {info['accuracy']:.4f} on {info['n_held_out']} images ({info['seconds']:.0f} s)")
    if not info["accuracy"] >= MIN_ACCURACY[split["protocol"]]:
        warnings.warn(f"this classifier is below the {MIN_ACCURACY[split['protocol']]} accuracy its protocol "
                      f"needs: it is used now but not reused from the cache")
    try:
        _save_cached(model, info, cached)
    except OSError as exc:
        warnings.warn(f"could not cache the classifier in {cached} ({exc}); it is kept in memory only")
    return model


def load_classifier(split=None, device="cpu", train_if_missing=True, verbose=True, cache_dir=None):
    """The frozen eval-mode classifier on `device` for the protocol of `split` (default `mnist_split()`): shipped
    weights (sha256-checked), else the checked `cache_path`, else trained if train_if_missing; verbose: print which."""
    split = split if split is not None else mnist_split()
    protocol, source = split["protocol"], None
    shipped, cached = WEIGHTS_DIR / f"mnist_cnn_{protocol}.pt", cache_path(protocol, cache_dir)
    if shipped.is_file():
        digest = sha256(shipped)
        if digest != SHIPPED_SHA256.get(protocol):
            raise ValueError(f"{shipped} has sha256 {digest}, expected {SHIPPED_SHA256.get(protocol)}: the "
                             f"file is corrupt or stale; restore it from git or run python scripts/train_classifier.py --ship")
        source = shipped
    elif cached.is_file():
        try:
            source = _check_cached(cached, protocol)
        except ValueError as exc:
            if not train_if_missing:
                raise ValueError(f"{exc}. Train a new one: load_classifier(train_if_missing=True) or "
                                 f"python scripts/train_classifier.py") from exc
            print(f"Not using the cached classifier: {exc}.")
    if source is None and not train_if_missing:
        raise FileNotFoundError(f"no classifier weights in {shipped} or {cached}; run python scripts/train_classifier.py")
    if source is None:
        model = _train_and_cache(split, device, cached)
    else:
        model = MNISTClassifier()
        model.load_state_dict(torch.load(source, map_location="cpu", weights_only=True))
        if verbose:
            print(f"{'Fashion-MNIST' if protocol.startswith('fashion') else 'MNIST'} classifier: {source}")
    return model.to(device).eval().requires_grad_(False)

