"""The MNIST evaluation classifier: a small CNN whose predictions and features score generated digits.

It is trained on the images the GAN trains on (the 'train' part of `metrics.mnist_split`) and
its accuracy is measured on images that neither it nor the GAN ever saw:
    paper protocol  (the 60,000-image training split is present): trains on train[0:50000],
                    accuracy on the 10,000 test images;
    offline protocol (only the 10,000-image test split):          trains on the 8,000 'train'
                    images of the fixed permutation in `mnist_split`, accuracy on the other 2,000.

`load_classifier()` returns it ready to use: weights shipped in gan_utils/weights/ (sha256
checked), else cached in <data root>/classifier/, else trained now (about a minute on a CPU) and
cached. Reproduce the shipped weights with

    GAN_DATA_DIR=/path/with/MNIST/raw python -m gan_utils.classifier --ship

(10 epochs, seed 0; about 6 minutes on a 2-core CPU). A second run on the same machine gave
bit-identical tensors; torch.save stores the file's name inside the archive, so compare a copy
saved elsewhere by its tensors, not by its sha256.
"""
import argparse
import hashlib
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# sha256 of the weights shipped with the package, per protocol (see `mnist_split`).
SHIPPED_SHA256 = {
    "offline": "5f2412005cfe47666c6072f93e77a5f76c2ea73b9fe2e2fc59690067b269c51d",
}
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
    """Fraction of `images` (N, 1, 28, 28) whose predicted class equals `labels` (N,)."""
    was_training = model.training
    model.eval()
    correct = sum((model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum().item()
                  for i in range(0, len(images), batch_size))
    model.train(was_training)
    return correct / len(images)


def held_out(split):
    """The images the classifier never trains on: (images, labels). Offline: valid + test of the
    split (2,000 images); paper protocol: the 10,000 test images."""
    if split["protocol"] == "offline":
        return torch.cat([split["x_valid"], split["x_test"]]), torch.cat([split["y_valid"], split["y_test"]])
    return split["x_test"], split["y_test"]


def train_classifier(split=None, epochs=10, batch_size=64, lr=1e-3, seed=0, device="cpu", verbose=True):
    """Train `MNISTClassifier` on split['x_train'] (Adam, cross-entropy, random shifts of up to 2
    pixels, learning rate halved after each epoch past the half) and measure its accuracy on
    `held_out(split)`. Returns (model in eval mode, info dict)."""
    from .metrics import mnist_split

    split = split if split is not None else mnist_split()
    torch.manual_seed(seed)
    x, y = split["x_train"].to(device), split["y_train"].to(device)
    model = MNISTClassifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.time()
    for epoch in range(epochs):
        if epoch >= epochs // 2:
            for group in opt.param_groups:
                group["lr"] *= 0.5
        order = torch.randperm(len(x), device=device)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(_shift(x[idx])), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: last batch loss {loss.item():.4f} ({time.time() - start:.0f} s)")
    model.eval()
    xh, yh = held_out(split)
    info = {"protocol": split["protocol"], "n_train": len(x), "n_held_out": len(xh),
            "accuracy": accuracy(model, xh.to(device), yh.to(device)), "seconds": time.time() - start,
            "trained_on": split["note"]}
    return model, info


def sha256(path):
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cache_path(protocol, root=None):
    """Where `load_classifier` caches weights it trained: <data root>/classifier/mnist_cnn_<protocol>.pt."""
    from .data import data_root

    return data_root(root) / "classifier" / f"mnist_cnn_{protocol}.pt"


def load_classifier(split=None, device="cpu", train_if_missing=True, verbose=True):
    """The evaluation classifier for the protocol of `split` (default: `mnist_split()`), in eval
    mode with frozen weights. Looks for gan_utils/weights/mnist_cnn_<protocol>.pt (its sha256 must
    match SHIPPED_SHA256), then the cache of `cache_path`; else trains it and caches it."""
    from .metrics import mnist_split

    split = split if split is not None else mnist_split()
    protocol = split["protocol"]
    shipped = WEIGHTS_DIR / f"mnist_cnn_{protocol}.pt"
    cached = cache_path(protocol)
    model = MNISTClassifier()
    if shipped.is_file():
        digest = sha256(shipped)
        if digest != SHIPPED_SHA256.get(protocol):
            raise ValueError(f"{shipped} has sha256 {digest}, expected {SHIPPED_SHA256.get(protocol)}: the "
                             f"file is corrupt or stale; restore it from git or run python -m gan_utils.classifier --ship")
        source = shipped
    elif cached.is_file():
        source = cached
    elif train_if_missing:
        if verbose:
            print(f"No classifier weights for the {protocol} protocol: training one ({split['note']})")
        model, info = train_classifier(split, device=device, verbose=verbose)
        if verbose:
            print(f"held-out accuracy {info['accuracy']:.4f} on {info['n_held_out']} images")
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), cached)
        except OSError as exc:
            warnings.warn(f"could not cache the classifier in {cached} ({exc}); it is kept in memory only")
        source = None
    else:
        raise FileNotFoundError(f"no classifier weights in {shipped} or {cached}; run python -m gan_utils.classifier")
    if source is not None:
        model.load_state_dict(torch.load(source, map_location="cpu", weights_only=True))
        if verbose:
            print(f"MNIST classifier: {source}")
    model.to(device).eval().requires_grad_(False)
    return model


def main(argv=None):
    """Command line: train the classifier, print its held-out accuracy and save the weights."""
    parser = argparse.ArgumentParser(prog="python -m gan_utils.classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="where to save the weights (default: the cache in the data root)")
    parser.add_argument("--ship", action="store_true", help="save into gan_utils/weights/ (the shipped file)")
    args = parser.parse_args(argv)
    from .metrics import mnist_split

    split = mnist_split()
    print(f"protocol {split['protocol']}: {split['note']}")
    model, info = train_classifier(split, epochs=args.epochs, seed=args.seed)
    name = f"mnist_cnn_{split['protocol']}.pt"
    out = Path(args.out) if args.out else (WEIGHTS_DIR / name if args.ship else cache_path(split["protocol"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    print(f"trained on {info['n_train']} images in {info['seconds']:.0f} s; accuracy on {info['n_held_out']} "
          f"held-out images it never saw: {info['accuracy']:.4f}")
    print(f"saved {out}  sha256 {sha256(out)}")
    return info


if __name__ == "__main__":
    main()
