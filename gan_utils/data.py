"""Data for the course: toy targets, noise priors, and MNIST-style images preloaded in one tensor.

Every sampler returns a float32 tensor of shape (n, dim) on `device`, drawn with torch's global
random number generator (so `seed_everything` and checkpoints make runs repeatable).
"""
import gzip
import hashlib
import math
import os
import socket
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

DATA_DIR_VARIABLE = "GAN_DATA_DIR"
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
    labels (N,) int64: yield (images, labels) pairs instead, for a conditional GAN (`train_gan`
    passes the labels to G and D).
    """

    def __init__(self, data, batch_size, shuffle=True, labels=None):
        if not torch.is_tensor(data) or data.ndim < 2:
            raise ValueError("data must be a tensor of shape (N, ...) with one example per row")
        if not 1 <= batch_size <= len(data):
            raise ValueError(f"batch_size must be between 1 and the {len(data)} examples, got {batch_size}")
        if labels is not None and (not torch.is_tensor(labels) or labels.shape != (len(data),)
                                   or labels.dtype.is_floating_point or labels.device != data.device):
            raise ValueError(f"labels must be an integer tensor of shape ({len(data)},) on {data.device}, one class "
                             f"per example, got {labels.dtype if torch.is_tensor(labels) else type(labels).__name__} "
                             f"{tuple(labels.shape) if torch.is_tensor(labels) else ''}")
        self.data, self.batch_size, self.shuffle, self.labels = data, batch_size, shuffle, labels

    def __len__(self):
        return len(self.data) // self.batch_size

    def __iter__(self):
        n = len(self) * self.batch_size
        order = torch.randperm(len(self.data), device=self.data.device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            idx = slice(start, start + self.batch_size) if order is None else order[start:start + self.batch_size]
            yield self.data[idx] if self.labels is None else (self.data[idx], self.labels[idx])


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
# md5 of each DECOMPRESSED idx file, as published with MNIST. One rule for .gz and plain files:
# any gzip of the right data is accepted (torchvision's download, a rebuilt copy, a user's own).
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
CHECKOUT_DIR = Path(__file__).resolve().parent.parent   # the repository, when run from a checkout


def user_cache_dir():
    """The per-user cache folder: $XDG_CACHE_HOME/gan-course, else ~/.cache/gan-course."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "gan-course"


def data_root(root=None):
    """Where image data lives: `root`; else $GAN_DATA_DIR; else the repository's data/ folder when
    the package runs from a checkout (its parent folder holds pyproject.toml); else the per-user
    cache folder `user_cache_dir()`. Never inside site-packages."""
    if root or os.environ.get(DATA_DIR_VARIABLE):
        return Path(root or os.environ[DATA_DIR_VARIABLE]).expanduser()
    if (CHECKOUT_DIR / "pyproject.toml").is_file():
        return CHECKOUT_DIR / "data"
    return user_cache_dir()


REPO_DATA_DIR = CHECKOUT_DIR / "data"


def check_pixels(images, what="images"):
    """Raise ValueError unless `images` (a tensor or array of any shape) is non-empty, finite and
    in [0, 1], the range the evaluation classifier and the Parzen estimate expect."""
    x = torch.as_tensor(images)
    if x.numel() == 0:
        raise ValueError(f"{what}: got no images (shape {tuple(x.shape)}); pass at least one")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{what}: {bad} of {x.numel()} values are NaN or infinite; check the generator "
                         f"(did training diverge?) before scoring its samples")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{what}: pixels must be in [0, 1], found [{lo:.3f}, {hi:.3f}]. For a tanh generator "
                         f"(outputs in [-1, 1]) pass (x + 1) / 2")


def _read_bytes(path):
    """The decompressed bytes of an idx file, .gz or plain; a broken gzip names the file and cause."""
    path = Path(path)
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(f"{path} is not a readable gzip file ({type(exc).__name__}: {exc}): it is "
                         f"corrupt or truncated. Put a good copy (gzipped or plain) in another folder "
                         f"and point {DATA_DIR_VARIABLE} there.") from exc


def read_idx(path, md5=None):
    """Read an IDX file (MNIST's format), gzipped or not, into a uint8 tensor of the header's shape.
    md5: if given, the md5 the DECOMPRESSED bytes must have (the same rule for .gz and plain files)."""
    path = Path(path)
    raw = _read_bytes(path)
    digest = hashlib.md5(raw).hexdigest() if md5 is not None else None
    if digest != md5:
        known = {v: k for k, v in MNIST_MD5.items()}.get(digest)
        raise ValueError(
            f"{path}: its decompressed bytes have md5 {digest}, expected {md5} (the published MNIST "
            f"file): " + (f"it holds {known} (files swapped or renamed?). " if known else
                          "it is corrupt, truncated or not MNIST. ") + f"Keep it (it may be your "
            f"only copy) and put a good copy, gzipped or plain, in another folder with MNIST/raw/ and "
            f"set {DATA_DIR_VARIABLE} to that folder, or download one on a machine with internet.")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (corrupt or truncated?)")
    ndim = raw[3]
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path} has a broken IDX header (ndim {ndim}, {len(raw)} bytes): corrupt or truncated")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(shape):
        raise ValueError(f"{path} holds {data.size} values but its header says {shape} (truncated?)")
    return torch.from_numpy(data.reshape(shape).copy())


def _find_split(raw_dir, prefix):
    """Paths of the images and labels files of one split in raw_dir (plain or .gz), or None if
    either is missing."""
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        name = f"{prefix}-{kind}"
        path = next((p for p in (raw_dir / name, raw_dir / f"{name}.gz") if p.is_file()), None)
        if path is None:
            return None
        found.append(path)
    return found


def _expected_md5(dataset, path):
    """The published md5 of the decompressed file (MNIST), or None (no check)."""
    return MNIST_MD5.get(Path(path).name.removesuffix(".gz")) if dataset == "mnist" else None


def _read_split(dataset, files):
    """Images (N, 28, 28) and labels (N,) of one split, checked: md5, shapes, label range."""
    images = read_idx(files[0], _expected_md5(dataset, files[0]))
    labels = read_idx(files[1], _expected_md5(dataset, files[1]))
    if images.ndim == 1 and labels.ndim == 3:
        raise ValueError(f"{files[0]} holds labels and {files[1]} holds images: the two files are swapped")
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{files[0]} holds an array of shape {tuple(images.shape)}, not 28x28 images (N, 28, 28)")
    if labels.ndim != 1:
        raise ValueError(f"{files[1]} holds an array of shape {tuple(labels.shape)}, not labels (N,)")
    if len(images) != len(labels):
        raise ValueError(f"{files[0]} has {len(images)} images but {files[1]} has {len(labels)} labels")
    if len(labels) and labels.max() > 9:
        raise ValueError(f"{files[1]} has labels up to {int(labels.max())}; class labels must be 0-9")
    return images, labels.long()


def _download(dataset, root, train):
    """torchvision's download into a temporary folder, with a time limit so that no notebook hangs
    without a network. Each file is read and checked (md5 of its decompressed bytes for MNIST)
    before it is renamed into <root>/<Dataset>/raw, so a failed or partial download leaves nothing
    there that could block a later load. Files already present are kept."""
    import torchvision

    raw_dir = Path(root) / DATASETS[dataset] / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with tempfile.TemporaryDirectory(prefix=".download-", dir=raw_dir) as tmp:
            getattr(torchvision.datasets, DATASETS[dataset])(tmp, train=train, download=True)
            new = sorted((Path(tmp) / DATASETS[dataset] / "raw").glob("*-ubyte.gz"))
            for gz in new:
                read_idx(gz, _expected_md5(dataset, gz))   # raises before anything is moved
            for gz in new:
                if not (raw_dir / gz.name).exists() and not (raw_dir / gz.stem).exists():
                    os.replace(gz, raw_dir / gz.name)
    finally:
        socket.setdefaulttimeout(old)


def _check_root(root, dataset):
    """A $GAN_DATA_DIR that does not exist gets an error that says what was looked for and where."""
    variable = os.environ.get(DATA_DIR_VARIABLE)
    if variable and Path(variable).expanduser() == root and not root.is_dir():
        raise FileNotFoundError(
            f"{DATA_DIR_VARIABLE}={variable} is not a folder. The loader looks for <{DATA_DIR_VARIABLE}>/"
            f"{DATASETS[dataset]}/raw/t10k-images-idx3-ubyte(.gz) and the other idx files there: create the "
            f"folder, point {DATA_DIR_VARIABLE} at one that holds {DATASETS[dataset]}/raw/, or unset it to use "
            f"the default (the repository's data/ in a checkout, else {user_cache_dir()}).")


def _load_files(dataset, train, root, download):
    """Find (downloading if allowed) the files of one split. Returns (files or None, split, error)."""
    raw_dir = root / DATASETS[dataset] / "raw"
    files = _find_split(raw_dir, "train" if train else "t10k")
    installed = user_cache_dir() / DATASETS[dataset] / "raw"       # install_debian_fashion_mnist's default
    if files is None and dataset == "fashion_mnist" and installed != raw_dir:
        files = _find_split(installed, "train" if train else "t10k")
    error = None
    if files is None and download:
        try:
            _download(dataset, root, train)
            files = _find_split(raw_dir, "train" if train else "t10k")
        except Exception as exc:  # no network, read-only folder, a bad download, ...
            error = exc
    split = "train" if train else "test"
    if files is None and train:
        files = _find_split(raw_dir, "t10k")
        if files is not None:
            split = "test"
            warnings.warn(
                f"The {dataset} training split is not in {raw_dir} and could not be downloaded "
                f"({type(error).__name__ if error else 'download=False'}). Falling back to the "
                f"10,000-image TEST split: results are not comparable with papers that train on "
                f"the 60,000 training images.", stacklevel=3)
    return files, split, error


def load_images(dataset="mnist", train=True, root=None, device="cpu", scale="01", limit=None,
                download=True):
    """Load MNIST or Fashion-MNIST into memory once. Returns (images, labels, info).

    images: float32 (N, 1, 28, 28) on `device`, in [0, 1] (scale='01', for a sigmoid generator)
    or [-1, 1] (scale='-11', for tanh); labels: int64 (N,); info: dict with 'split' actually
    used ('train' or 'test'), 'n' and 'root'. limit: keep the first `limit` images (None: all).

    The files are looked for in <root>/MNIST/raw (or FashionMNIST/raw), root from `data_root`,
    gzipped or plain; MNIST files must have the published md5 once decompressed. A missing
    split is downloaded with torchvision; if that fails (no internet) the test split is used
    instead of the training split, with a warning. Only the two files of the split are needed.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; use one of {sorted(DATASETS)}")
    if scale not in ("01", "-11"):
        raise ValueError(f"scale must be '01' (sigmoid output) or '-11' (tanh output), got {scale!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive number of images or None (all), got {limit!r}")
    root = data_root(root)
    _check_root(root, dataset)
    files, split, error = _load_files(dataset, train, root, download)
    if files is None:
        raw_dir = root / DATASETS[dataset] / "raw"
        hint = (f"apt-get install dataset-fashion-mnist, then gan_utils.install_debian_fashion_mnist()"
                if dataset == "fashion_mnist" else
                f"torchvision.datasets.MNIST('{root}', train=True, download=True) on a machine with internet")
        raise FileNotFoundError(
            f"No {dataset} files in {raw_dir} (looked for {'train' if train else 't10k'}-images-idx3-ubyte"
            f"[.gz] and its labels file; data root from {_root_source(root)}) and the download failed "
            f"({error or 'download=False'}). Put the idx files there, set {DATA_DIR_VARIABLE} to a folder "
            f"that holds {DATASETS[dataset]}/raw/, or run: {hint}")
    images, labels = _read_split(dataset, files)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = images.unsqueeze(1).float().div_(255)
    if scale == "-11":
        x = x * 2 - 1
    if split == "test" and train:
        print(f"Using {len(x)} images of the {dataset} TEST split (training split unavailable).")
    return x.to(device), labels.to(device), {"split": split, "n": len(x), "root": str(root)}


def _root_source(root):
    """Which rule of `data_root` chose `root`, for error messages."""
    if os.environ.get(DATA_DIR_VARIABLE) and Path(os.environ[DATA_DIR_VARIABLE]).expanduser() == root:
        return f"{DATA_DIR_VARIABLE}={os.environ[DATA_DIR_VARIABLE]}"
    return "the root argument" if root != data_root() else "the default (GAN_DATA_DIR unset)"


def mnist_split(root=None, device="cpu", n_train=8000, n_valid=1000, n_test=1000, seed=2014, download=True,
                dataset="mnist"):
    """The data of the paper's protocol, with no image both trained on and scored.

    paper   (MNIST training split present): train = train[0:50000], valid = train[50000:51000]
            (chooses the Parzen sigma), test = the 10,000 test images (scored).
    offline (only the 10,000-image TEST split): a fixed permutation of it,
            np.random.RandomState(seed).permutation(10000), is cut into n_train / n_valid / n_test.
    Returns a dict: x_train, x_valid, x_test (float32 (N, 1, 28, 28) in [0, 1]), y_* (int64 (N,)),
    idx_train, idx_valid, idx_test (int64 indices into their source split), source (which official
    split each part comes from), protocol ('paper' or 'offline') and note (one line saying so).
    root, download: as in `load_images` (download=True tries torchvision's download first).
    dataset='fashion_mnist': the same cuts of Fashion-MNIST, protocol 'fashion_paper' or 'fashion_offline'.
    """
    with warnings.catch_warnings():  # the fallback to the test split is stated in 'note'
        warnings.simplefilter("ignore", UserWarning)
        x, y, info = load_images(dataset, train=True, root=root, scale="01", download=download)
    if info["split"] == "train":
        xt, yt, _ = load_images(dataset, train=False, root=root, scale="01", download=download)
        idx = {"train": torch.arange(0, 50000), "valid": torch.arange(50000, 51000), "test": torch.arange(len(xt))}
        parts = {"train": (x, y), "valid": (x, y), "test": (xt, yt)}
        source = {"train": "train", "valid": "train", "test": "test"}
        protocol, note = "paper", ("paper protocol: train on MNIST train[0:50000], sigma on train[50000:51000], "
                                   "score the 10,000 test images")
    else:
        if n_train + n_valid + n_test > len(x):
            raise ValueError(f"n_train + n_valid + n_test must be at most {len(x)}")
        perm = torch.from_numpy(np.random.RandomState(seed).permutation(len(x)))
        cuts = np.cumsum([0, n_train, n_valid, n_test])
        idx = {k: perm[cuts[i]:cuts[i + 1]] for i, k in enumerate(("train", "valid", "test"))}
        parts = {k: (x, y) for k in idx}
        source = {k: "test" for k in idx}
        protocol, note = "offline", (f"offline protocol (no MNIST training split here): the 10,000 TEST images, "
                                     f"permuted with seed {seed}, split into {n_train} train / {n_valid} "
                                     f"validation / {n_test} scored; no scored image is trained on")
    if dataset != "mnist":
        protocol, note = f"fashion_{protocol}", note.replace("MNIST", "Fashion-MNIST")
    out = {"protocol": protocol, "note": note, "source": source, "dataset": dataset}
    for k, (images, labels) in parts.items():
        out[f"x_{k}"], out[f"y_{k}"] = images[idx[k]].to(device), labels[idx[k]].to(device)
        out[f"idx_{k}"] = idx[k]
    return out


def install_debian_fashion_mnist(root=None, source=DEBIAN_FASHION_DIR):
    """Decompress Debian's Fashion-MNIST (apt-get install dataset-fashion-mnist) into
    <root>/FashionMNIST/raw, root defaulting to the writable per-user `user_cache_dir()` (the data
    root may be read-only), where `load_images('fashion_mnist')` finds it whatever the data root."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source} does not exist: run `apt-get install dataset-fashion-mnist`")
    raw_dir = Path(root or user_cache_dir()).expanduser() / "FashionMNIST" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for gz in sorted(source.glob("*-ubyte.gz")):
        target = raw_dir / gz.name[:-3]
        if not target.exists():
            target.write_bytes(gzip.open(gz, "rb").read())
    return raw_dir
