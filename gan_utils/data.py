"""Data for the course: toy targets, noise priors, and MNIST-style images preloaded in one tensor.

Every sampler returns a float32 tensor of shape (n, dim) on `device`, drawn with torch's global
random number generator (so `seed_everything` and checkpoints make runs repeatable).
"""
import gzip
import math
import os
import socket
import warnings
from pathlib import Path

import numpy as np
import torch

DATA_DIR_VARIABLE = "GAN_DATA_DIR"
REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DOWNLOAD_TIMEOUT_S = 30


# ----------------------------------------------------------------------------- toy targets
def sample_gaussian_1d(n, mu=4.0, sigma=1.25, device="cpu"):
    """n samples of the 1D target x ~ N(mu, sigma^2). Returns (n, 1)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    return mu + sigma * torch.randn(n, 1, device=device)


def gaussian_pdf(x, mu=4.0, sigma=1.25):
    """Density of N(mu, sigma^2) at x (any shape): exp(-(x-mu)^2 / 2 sigma^2) / (sigma sqrt(2 pi))."""
    x = torch.as_tensor(x, dtype=torch.float32)
    return torch.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def sample_line_2d(n, slope=0.5, intercept=1.0, x_range=(-2.0, 2.0), noise=0.0, device="cpu"):
    """n points on the segment y = slope * x + intercept, x ~ U(x_range); Gaussian noise of std
    `noise` is added perpendicular to the line. Returns (n, 2)."""
    lo, hi = x_range
    if not lo < hi:
        raise ValueError(f"x_range must be (low, high) with low < high, got {x_range}")
    x = lo + (hi - lo) * torch.rand(n, 1, device=device)
    points = torch.cat([x, slope * x + intercept], dim=1)
    if noise > 0:
        normal = torch.tensor([-slope, 1.0], device=device) / math.hypot(slope, 1.0)
        points = points + noise * torch.randn(n, 1, device=device) * normal
    return points


def ring_centers(modes=8, radius=2.0):
    """Centres of `modes` Gaussians evenly spaced on a circle (VEEGAN/PacGAN ring). Returns (modes, 2)."""
    angles = torch.arange(modes, dtype=torch.float32) * (2 * math.pi / modes)
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def grid_centers(side=5, spacing=2.0):
    """Centres of a side x side grid of Gaussians ({-4,-2,0,2,4}^2 by default). Returns (side^2, 2)."""
    coords = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    return torch.cartesian_prod(coords, coords)


def sample_mixture_2d(n, centers, std=0.02, device="cpu"):
    """n points from an equal-weight mixture of isotropic Gaussians at `centers` (m, 2). Returns (n, 2)."""
    centers = centers.to(device)
    idx = torch.randint(len(centers), (n,), device=device)
    return centers[idx] + std * torch.randn(n, 2, device=device)


def sample_ring(n, modes=8, radius=2.0, std=0.02, device="cpu"):
    """The 8-mode ring of Gaussians. Returns (n, 2)."""
    return sample_mixture_2d(n, ring_centers(modes, radius), std, device)


def sample_grid(n, side=5, spacing=2.0, std=0.05, device="cpu"):
    """The 25-mode grid of Gaussians. Returns (n, 2)."""
    return sample_mixture_2d(n, grid_centers(side, spacing), std, device)


def sample_noise(n, dim, kind="normal", device="cpu"):
    """The generator's prior p_z: 'normal' N(0, I) or 'uniform' U(-1, 1). Returns (n, dim)."""
    if kind == "normal":
        return torch.randn(n, dim, device=device)
    if kind == "uniform":
        return 2 * torch.rand(n, dim, device=device) - 1
    raise ValueError(f"unknown noise kind {kind!r}; use 'normal' or 'uniform'")


def make_noise(dim, kind="normal", device="cpu"):
    """A function n -> (n, dim) noise batch, the `noise` argument of `train_gan`."""
    sample_noise(1, dim, kind)  # fail now on a bad kind, not inside the training loop

    def noise(n):
        return sample_noise(n, dim, kind, device)

    return noise


# ----------------------------------------------------------------------------- minibatches
class TensorBatches:
    """Shuffled minibatches of a tensor that is already in memory (on the training device).

    ``for real in TensorBatches(images, 128): ...`` yields (batch_size, *item_shape) slices;
    each pass is one epoch in a new random order (torch's global RNG), the last partial batch
    is dropped. Indexing one preloaded tensor avoids the per-image cost of a DataLoader.
    """

    def __init__(self, data, batch_size, shuffle=True):
        if not torch.is_tensor(data) or data.ndim < 2:
            raise ValueError("data must be a tensor of shape (N, ...) with one example per row")
        if not 1 <= batch_size <= len(data):
            raise ValueError(f"batch_size must be between 1 and the {len(data)} examples, got {batch_size}")
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle

    def __len__(self):
        return len(self.data) // self.batch_size

    def __iter__(self):
        n = len(self) * self.batch_size
        order = torch.randperm(len(self.data), device=self.data.device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                yield self.data[start:start + self.batch_size]
            else:
                yield self.data[order[start:start + self.batch_size]]


class ToyBatches:
    """Fresh minibatches from a sampler: ``ToyBatches(lambda n: sample_gaussian_1d(n), 64, 100)``
    is an 'epoch' of 100 batches of shape (64, 1)."""

    def __init__(self, sampler, batch_size, batches_per_epoch=100):
        if batch_size < 1 or batches_per_epoch < 1:
            raise ValueError("batch_size and batches_per_epoch must be at least 1")
        self.sampler, self.batch_size, self.batches_per_epoch = sampler, batch_size, batches_per_epoch

    def __len__(self):
        return self.batches_per_epoch

    def __iter__(self):
        for _ in range(self.batches_per_epoch):
            yield self.sampler(self.batch_size)


# ----------------------------------------------------------------------------- MNIST-style images
MNIST_MD5 = {  # as torchvision checks them
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def data_root(root=None):
    """Where image data lives: `root`, else $GAN_DATA_DIR, else the repository's data/ folder."""
    return Path(root or os.environ.get(DATA_DIR_VARIABLE) or REPO_DATA_DIR).expanduser()


def read_idx(path):
    """Read an IDX file (MNIST's format), gzipped or not, into a uint8 tensor."""
    path = Path(path)
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (corrupt or truncated?)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(shape):
        raise ValueError(f"{path} holds {data.size} values but its header says {shape} (truncated?)")
    return torch.from_numpy(data.reshape(shape).copy())


def _find_split(raw_dir, prefix, check_md5):
    """Paths of the images and labels files of one split in raw_dir, or None if either is missing."""
    from torchvision.datasets.utils import check_integrity

    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        name = f"{prefix}-{kind}"
        if (raw_dir / name).is_file():
            found.append(raw_dir / name)
        elif (raw_dir / f"{name}.gz").is_file():
            gz = raw_dir / f"{name}.gz"
            if check_md5 and not check_integrity(str(gz), MNIST_MD5[gz.name]):
                raise ValueError(f"{gz} fails its md5 check: delete it and download it again")
            found.append(gz)
        else:
            return None
    return found


def _download(dataset, root, train):
    """torchvision's download, with a time limit so that no notebook hangs without a network."""
    import torchvision

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        getattr(torchvision.datasets, DATASETS[dataset])(str(root), train=train, download=True)
    finally:
        socket.setdefaulttimeout(old)


def load_images(dataset="mnist", train=True, root=None, device="cpu", scale="01", limit=None,
                download=True):
    """Load MNIST or Fashion-MNIST into memory once. Returns (images, labels, info).

    images: float32 (N, 1, 28, 28) on `device`, in [0, 1] (scale='01', for a sigmoid generator)
    or [-1, 1] (scale='-11', for tanh); labels: int64 (N,); info: dict with 'split' actually
    used ('train' or 'test'), 'n' and 'root'.

    The files are looked for in <root>/MNIST/raw (or FashionMNIST/raw), root from `data_root`.
    A missing training split is downloaded with torchvision; if that fails (no internet) the
    test split is used instead, with a warning. Only the two files of the split are needed.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; use one of {sorted(DATASETS)}")
    if scale not in ("01", "-11"):
        raise ValueError(f"scale must be '01' (sigmoid output) or '-11' (tanh output), got {scale!r}")
    root = data_root(root)
    raw_dir = root / DATASETS[dataset] / "raw"
    check_md5 = dataset == "mnist"
    split = "train" if train else "test"
    files = _find_split(raw_dir, "train" if train else "t10k", check_md5)
    error = None
    if files is None and download:
        try:
            _download(dataset, root, train)
            files = _find_split(raw_dir, "train" if train else "t10k", check_md5)
        except Exception as exc:  # no network, read-only folder, ...
            error = exc
    if files is None and train:
        files = _find_split(raw_dir, "t10k", check_md5)
        if files is not None:
            split = "test"
            warnings.warn(
                f"The {dataset} training split is not in {raw_dir} and could not be downloaded "
                f"({type(error).__name__ if error else 'download=False'}). Falling back to the "
                f"10,000-image TEST split: results are not comparable with papers that train on "
                f"the 60,000 training images.", stacklevel=2)
    if files is None:
        hint = (f"apt-get install dataset-fashion-mnist, then gan_utils.install_debian_fashion_mnist()"
                if dataset == "fashion_mnist" else
                f"torchvision.datasets.MNIST('{root}', train=True, download=True) on a machine with internet")
        raise FileNotFoundError(
            f"No {dataset} files in {raw_dir} and the download failed ({error}). Put the idx files "
            f"(e.g. t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) there, set "
            f"{DATA_DIR_VARIABLE} to a folder that holds {DATASETS[dataset]}/raw/, or run: {hint}")
    images, labels = read_idx(files[0]), read_idx(files[1]).long()
    if len(images) != len(labels):
        raise ValueError(f"{files[0]} has {len(images)} images but {files[1]} has {len(labels)} labels")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = images.unsqueeze(1).float().div_(255)
    if scale == "-11":
        x = x * 2 - 1
    if split == "test" and train:
        print(f"Using {len(x)} images of the {dataset} TEST split (training split unavailable).")
    return x.to(device), labels.to(device), {"split": split, "n": len(x), "root": str(root)}


def install_debian_fashion_mnist(root=None, source=DEBIAN_FASHION_DIR):
    """Decompress Debian's Fashion-MNIST (apt-get install dataset-fashion-mnist) into
    <root>/FashionMNIST/raw, where `load_images('fashion_mnist')` and torchvision find it."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source} does not exist: run `apt-get install dataset-fashion-mnist`")
    raw_dir = data_root(root) / "FashionMNIST" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for gz in sorted(source.glob("*-ubyte.gz")):
        target = raw_dir / gz.name[:-3]
        if not target.exists():
            target.write_bytes(gzip.open(gz, "rb").read())
    return raw_dir
