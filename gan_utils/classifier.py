"""The MNIST evaluation classifier: a small CNN whose predictions and features score generated digits.

It is trained on the images the GAN trains on (the 'train' part of `data.mnist_split`) and
its accuracy is measured on images that neither it nor the GAN ever saw:
    paper protocol  (the 60,000-image training split is present): trains on train[0:50000],
                    accuracy on the 10,000 test images;
    offline protocol (only the 10,000-image test split):          trains on the 8,000 'train'
                    images of the fixed permutation in `mnist_split`, accuracy on the other 2,000.

`load_classifier()` returns it ready to use: weights shipped in gan_utils/weights/ for the
protocols in SHIPPED_SHA256 (sha256 checked), else cached in the per-user cache folder
<user_cache_dir()>/classifier/ (checked against a sidecar .json with its sha256 and accuracy),
else trained now, with a progress bar and the expected time, and cached there (never in the
data root, which may be read-only). Reproduce the shipped weights with

    GAN_DATA_DIR=../shared/data        python -m gan_utils.classifier --ship   # offline
    GAN_DATA_DIR=../shared/mnist-full  python -m gan_utils.classifier --ship --threads 1  # paper
    python -m gan_utils.classifier --ship --dataset fashion_mnist --epochs 4                 # Fashion-MNIST

(10 epochs, seed 0. Offline: about 6 minutes on a 2-core CPU, held-out accuracy 0.9835.
Paper: 49 minutes with 1 thread at nice 10 on a shared 2-core CPU, accuracy
0.9932 on the 10,000 test images.)
torch.save stores the file's name inside the archive, so compare a copy saved elsewhere by its
tensors, not by its sha256.
"""
import argparse
import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import check_pixels, mnist_split, user_cache_dir

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
    """A LeNet-style CNN for 28x28 digits with pixels in [0, 1] (114k parameters):
    conv 5x5 (16) - ReLU - maxpool 2 - conv 5x5 (32) - ReLU - maxpool 2 - Linear 1568 -> 64 - ReLU
    (the features) - dropout 0.3 - Linear 64 -> 10 (the logits).
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
    """Fraction of `images` (N, 1, 28, 28), pixels in [0, 1], whose predicted class equals `labels`
    (N,). Images are moved in batches to the model's device."""
    check_pixels(images, "accuracy")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need as many labels as images (and at least one), got {len(images)} and {len(labels)}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = sum((model(images[i:i + batch_size].to(device)).argmax(1).cpu()
                   == labels[i:i + batch_size].cpu()).sum().item() for i in range(0, len(images), batch_size))
    model.train(was_training)
    return correct / len(images)


def held_out(split):
    """The images the classifier never trains on: (images, labels). Offline: valid + test of the
    split (2,000 images); paper protocol: the 10,000 test images."""
    if split["protocol"] == "offline":
        return torch.cat([split["x_valid"], split["x_test"]]), torch.cat([split["y_valid"], split["y_test"]])
    return split["x_test"], split["y_test"]


def train_classifier(split=None, epochs=10, batch_size=64, lr=1e-3, seed=0, device="cpu", verbose=True, max_shift=2):
    """Train `MNISTClassifier` on split['x_train'] (N, 1, 28, 28) (Adam, cross-entropy, random
    shifts of up to `max_shift` pixels, learning rate halved after each epoch past the half) and measure its
    accuracy on `held_out(split)`. verbose: a tqdm progress bar whose line gives the expected
    time. Returns (model in eval mode, info dict)."""
    split = split if split is not None else mnist_split()
    torch.manual_seed(seed)
    x, y = split["x_train"].to(device), split["y_train"].to(device)
    check_pixels(x, "train_classifier")
    model = MNISTClassifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(x) // batch_size)
    bar = tqdm(total=steps, disable=not verbose, unit="batch", desc=f"training the {'Fashion-MNIST' if split.get('dataset') == 'fashion_mnist' else 'MNIST'} classifier")
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
            "accuracy": accuracy(model, xh, yh), "seconds": time.time() - start,
            "trained_on": split["note"]}
    return model, info


def sha256(path):
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cache_path(protocol, cache_dir=None):
    """Where `load_classifier` caches weights it trained: <cache_dir>/classifier/mnist_cnn_<protocol>.pt,
    cache_dir defaulting to the per-user `data.user_cache_dir()` (never the data root). Next to it,
    mnist_cnn_<protocol>.json records the file's sha256 and held-out accuracy."""
    return Path(cache_dir or user_cache_dir()) / "classifier" / f"mnist_cnn_{protocol}.pt"


def _check_cached(path, protocol):
    """Raise ValueError unless `path` matches the sha256 in its sidecar .json and that records an
    accuracy of at least MIN_ACCURACY[protocol] for this protocol."""
    sidecar = path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
        expected, acc = meta["sha256"], float(meta["accuracy"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cached classifier {path} has no valid record {sidecar} ({exc})") from exc
    if sha256(path) != expected:
        raise ValueError(f"cached classifier {path} has sha256 {sha256(path)}, its record says {expected}")
    if meta.get("protocol") != protocol or acc < MIN_ACCURACY[protocol]:
        raise ValueError(f"cached classifier {path} is for the {meta.get('protocol')} protocol with accuracy "
                         f"{acc:.4f}; the {protocol} protocol needs {MIN_ACCURACY[protocol]}")


def _save_cached(model, info, path):
    """Write the weights and their sidecar record under temporary names, then rename them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    torch.save(model.state_dict(), tmp)
    record = {"sha256": sha256(tmp), "accuracy": info["accuracy"], "protocol": info["protocol"],
              "n_train": info["n_train"], "n_held_out": info["n_held_out"], "trained_on": info["trained_on"]}
    path.with_suffix(".json.tmp").write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)
    os.replace(path.with_suffix(".json.tmp"), path.with_suffix(".json"))


def _train_and_cache(split, device, cached):
    """Train the protocol's classifier now, saying so with a progress bar even when the caller asked
    for quiet (training is never silent), and cache it (kept in memory if that fails)."""
    print(f"No shipped classifier weights for the {split['protocol']} protocol: training one now on "
          f"{len(split['x_train'])} images ({split['note']}). The progress bar shows the expected time; "
          f"the weights are then cached in {cached}.")
    model, info = train_classifier(split, device=device, verbose=True)
    print(f"held-out accuracy {info['accuracy']:.4f} on {info['n_held_out']} images ({info['seconds']:.0f} s)")
    if info["accuracy"] < MIN_ACCURACY[split["protocol"]]:
        warnings.warn(f"this classifier is below the {MIN_ACCURACY[split['protocol']]} accuracy its protocol "
                      f"needs: it is used now but not reused from the cache")
    try:
        _save_cached(model, info, cached)
    except OSError as exc:
        warnings.warn(f"could not cache the classifier in {cached} ({exc}); it is kept in memory only")
    return model


def load_classifier(split=None, device="cpu", train_if_missing=True, verbose=True, cache_dir=None):
    """The evaluation classifier for the protocol of `split` (default: `mnist_split()`), in eval
    mode with frozen weights, on `device`. Looks for gan_utils/weights/mnist_cnn_<protocol>.pt (its
    sha256 must match SHIPPED_SHA256), then the checked cache of `cache_path`; else trains it
    (train_if_missing; announced with a progress bar even with verbose=False) and caches it.
    verbose: print which weights file was loaded."""
    split = split if split is not None else mnist_split()
    protocol = split["protocol"]
    shipped = WEIGHTS_DIR / f"mnist_cnn_{protocol}.pt"
    cached = cache_path(protocol, cache_dir)
    source = None
    if shipped.is_file():
        digest = sha256(shipped)
        if digest != SHIPPED_SHA256.get(protocol):
            raise ValueError(f"{shipped} has sha256 {digest}, expected {SHIPPED_SHA256.get(protocol)}: the "
                             f"file is corrupt or stale; restore it from git or run python -m gan_utils.classifier --ship")
        source = shipped
    elif cached.is_file():
        try:
            _check_cached(cached, protocol)
            source = cached
        except ValueError as exc:
            if not train_if_missing:
                raise ValueError(f"{exc}. Train a new one: load_classifier(train_if_missing=True) or "
                                 f"python -m gan_utils.classifier") from exc
            print(f"Not using the cached classifier: {exc}.")
    if source is None and not train_if_missing:
        raise FileNotFoundError(f"no classifier weights in {shipped} or {cached}; run python -m gan_utils.classifier")
    if source is None:
        model = _train_and_cache(split, device, cached)
    else:
        model = MNISTClassifier()
        model.load_state_dict(torch.load(source, map_location="cpu", weights_only=True))
        if verbose:
            print(f"{'Fashion-MNIST' if protocol.startswith('fashion') else 'MNIST'} classifier: {source}")
    return model.to(device).eval().requires_grad_(False)


def main(argv=None):
    """Command line: train the classifier, print its held-out accuracy and save the weights."""
    parser = argparse.ArgumentParser(prog="python -m gan_utils.classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="where to save the weights (default: the per-user cache, with its record)")
    parser.add_argument("--ship", action="store_true", help="save into gan_utils/weights/ (the shipped file)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--max-shift", type=int, default=2, help="random shifts of up to this many pixels")
    parser.add_argument("--dataset", choices=["mnist", "fashion_mnist"], default="mnist",
                        help="fashion_mnist: the same CNN for Fashion-MNIST (protocol fashion_paper)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    split = mnist_split(dataset=args.dataset)
    print(f"protocol {split['protocol']}: {split['note']}")
    model, info = train_classifier(split, epochs=args.epochs, seed=args.seed, max_shift=args.max_shift)
    name = f"mnist_cnn_{split['protocol']}.pt"
    out = Path(args.out) if args.out else (WEIGHTS_DIR / name if args.ship else cache_path(split["protocol"]))
    if out == cache_path(split["protocol"]):
        _save_cached(model, info, out)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out)
    print(f"trained on {info['n_train']} images in {info['seconds']:.0f} s; accuracy on {info['n_held_out']} "
          f"held-out images it never saw: {info['accuracy']:.4f}")
    print(f"saved {out}  sha256 {sha256(out)}")
    return info


if __name__ == "__main__":
    main()
