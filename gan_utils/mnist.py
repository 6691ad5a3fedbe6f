"""MNIST and Fashion-MNIST on disk (find, check, download, read idx files) and the paper's protocol `mnist_split`."""
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
import torchvision

from .checkpoints import save_atomic

DATA_DIR_VARIABLE = "GAN_DATA_DIR"
DOWNLOAD_TIMEOUT_S = 30


# md5 of each DECOMPRESSED idx file, as published with MNIST (one rule for .gz and plain files).
MNIST_MD5 = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
             "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
             "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
             "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}
# The same for Fashion-MNIST (zalandoresearch; its .gz files: 8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...).
FASHION_MNIST_MD5 = {"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                     "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
                     "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
                     "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"}
DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
CHECKOUT_DIR = Path(__file__).resolve().parent.parent   # the repository, when run from a checkout


def user_cache_dir():
    """The per-user cache folder: $XDG_CACHE_HOME/gan-course, else ~/.cache/gan-course."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "gan-course"


def data_root(root=None):
    """Where image data lives: `root`; else $GAN_DATA_DIR; else data/ of the checkout; else `user_cache_dir()`."""
    if root or os.environ.get(DATA_DIR_VARIABLE):
        return Path(root or os.environ[DATA_DIR_VARIABLE]).expanduser()
    if (CHECKOUT_DIR / "pyproject.toml").is_file():
        return CHECKOUT_DIR / "data"
    return user_cache_dir()


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
    """Read an IDX file, gzipped or not, into a uint8 tensor of the header's shape; md5: of the decompressed bytes."""
    path = Path(path)
    raw = _read_bytes(path)
    digest = hashlib.md5(raw).hexdigest() if md5 is not None else None
    if digest != md5:
        known = {v: f"{name}'s {k}" for name, table in (("MNIST", MNIST_MD5), ("Fashion-MNIST", FASHION_MNIST_MD5))
                 for k, v in table.items()}.get(digest)
        raise ValueError(f"{path}: its decompressed bytes have md5 {digest}, expected {md5} (the published file): "
                         + (f"it holds {known} (files swapped or renamed?). " if known else "it is corrupt, truncated "
                            "or not the dataset. ") + f"Keep it; put a good copy (gzipped or plain) in another "
                         f"folder's {path.parent.parent.name}/raw/ and set {DATA_DIR_VARIABLE} to it, or download one.")
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
    """One split's [images, labels], each its copies in raw_dir (plain, then .gz); None if one is missing."""
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        paths = [p for p in (raw_dir / f"{prefix}-{kind}", raw_dir / f"{prefix}-{kind}.gz") if p.is_file()]
        if not paths:
            return None
        found.append(paths)
    return found


def _expected_md5(dataset, path):
    """The published md5 of the decompressed file."""
    return (MNIST_MD5 if dataset == "mnist" else FASHION_MNIST_MD5)[Path(path).name.removesuffix(".gz")]


def _read_checked(dataset, paths):
    """(data, path) of the first of `paths` (copies of one file) whose md5 is the published one; a bad copy beside a
    good one is named in a warning; if none is good, the first one's error."""
    try:
        return read_idx(paths[0], _expected_md5(dataset, paths[0])), paths[0]
    except ValueError as exc:
        if len(paths) == 1 or _expected_md5(dataset, paths[1]) != hashlib.md5(_read_bytes(paths[1])).hexdigest():
            raise
        warnings.warn(f"{exc} Using {paths[1]} instead.", stacklevel=4)
        return read_idx(paths[1], _expected_md5(dataset, paths[1])), paths[1]


def _read_split(dataset, files):
    """Images (N, 28, 28) and labels (N,) of one split, checked: md5, shapes, label range."""
    (images, image_file), (labels, label_file) = _read_checked(dataset, files[0]), _read_checked(dataset, files[1])
    files = [image_file, label_file]
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
    """torchvision's download, with a time limit, into a temporary folder; files are checked (md5) before
    they are moved into <root>/<Dataset>/raw, so a failed download leaves nothing there."""
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
    """Raise FileNotFoundError, saying what is looked for, when $GAN_DATA_DIR is not a folder."""
    variable = os.environ.get(DATA_DIR_VARIABLE)
    if variable and Path(variable).expanduser() == root and not root.is_dir():
        raise FileNotFoundError(
            f"{DATA_DIR_VARIABLE}={variable} is not a folder. The loader looks for <{DATA_DIR_VARIABLE}>/"
            f"{DATASETS[dataset]}/raw/t10k-images-idx3-ubyte(.gz) and the other idx files there: create the "
            f"folder, point {DATA_DIR_VARIABLE} at one that holds {DATASETS[dataset]}/raw/, or unset it to use "
            f"the default (the repository's data/ in a checkout, else {user_cache_dir()}).")


def _load_files(dataset, train, root, download):
    """Find (downloading if allowed) the files of one split. Returns (files or None, split, error)."""
    raw_dir, prefix, error = root / DATASETS[dataset] / "raw", "train" if train else "t10k", None
    files = _find_split(raw_dir, prefix)
    installed = user_cache_dir() / DATASETS[dataset] / "raw"       # install_debian_fashion_mnist's default
    if files is None and dataset == "fashion_mnist" and installed != raw_dir:
        files = _find_split(installed, prefix)
    if files is None and download:
        try:
            _download(dataset, root, train)
            files = _find_split(raw_dir, prefix)
        except Exception as exc:  # no network, read-only folder, a bad download, ...
            error = exc
    if files is None and train and _find_split(raw_dir, "t10k") is not None:
        warnings.warn(
            f"The {dataset} training split is not in {raw_dir} and could not be downloaded "
            f"({type(error).__name__ if error else 'download=False'}). Falling back to the 10,000-image TEST "
            "split: results are not comparable with papers that train on the 60,000 training images.", stacklevel=3)
        return _find_split(raw_dir, "t10k"), "test", error
    return files, "train" if train else "test", error


def load_images(dataset="mnist", train=True, root=None, device="cpu", pixels="01", limit=None, download=True):
    """MNIST or Fashion-MNIST in memory: (images float32 (N, 1, 28, 28) on `device` in [0, 1] (pixels="01") or [-1, 1]
    ("-11"), labels int64 (N,), info {'split' used, 'n', 'root'}); limit: the first `limit` images. Files from
    <data_root(root)>/MNIST/raw (md5-checked), else downloaded, else the test split with a warning."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; use one of {sorted(DATASETS)}")
    if pixels not in ("01", "-11"):
        raise ValueError(f"pixels must be '01' (sigmoid output) or '-11' (tanh output), got {pixels!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive number of images or None (all), got {limit!r}")
    root = data_root(root)
    _check_root(root, dataset)
    files, split, error = _load_files(dataset, train, root, download)
    if files is None:
        raw_dir = root / DATASETS[dataset] / "raw"
        hint = (f"torchvision.datasets.{DATASETS[dataset]}('{root}', train=True, download=True) with internet"
                + (", or offline: apt-get install dataset-fashion-mnist, then gan_utils.install_debian_fashion_mnist()"
                   if dataset == "fashion_mnist" else ""))
        raise FileNotFoundError(
            f"No {dataset} files in {raw_dir} (looked for {'train' if train else 't10k'}-images-idx3-ubyte"
            f"[.gz] and its labels file; data root from {_root_source(root)}) and the download failed "
            f"({error or 'download=False'}). Put the idx files there, set {DATA_DIR_VARIABLE} to a folder "
            f"that holds {DATASETS[dataset]}/raw/, or run: {hint}")
    images, labels = _read_split(dataset, files)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = images.unsqueeze(1).float().div_(255)
    if pixels == "-11":
        x = x * 2 - 1
    if split == "test" and train:
        print(f"Using {len(x)} images of the {dataset} TEST split (training split unavailable).")
    return x.to(device), labels.to(device), {"split": split, "n": len(x), "root": str(root)}


def _root_source(root):
    """Which rule of `data_root` chose `root`, for error messages."""
    if os.environ.get(DATA_DIR_VARIABLE) and Path(os.environ[DATA_DIR_VARIABLE]).expanduser() == root:
        return f"{DATA_DIR_VARIABLE}={os.environ[DATA_DIR_VARIABLE]}"
    return "the root argument" if root != data_root() else "the default (GAN_DATA_DIR unset)"


OFFLINE_SIZES, OFFLINE_SEED = {"train": 8000, "valid": 1000, "test": 1000}, 2014


def mnist_split(root=None, device="cpu", download=True, dataset="mnist"):
    """The paper's data protocol, no image both trained on and scored. 'paper': train[0:50000], valid
    train[50000:51000] (Parzen sigma), test = the 10,000 test images; 'offline' (test split only): a
    RandomState(2014) permutation of it cut into `OFFLINE_SIZES`. Returns x_train/x_valid/x_test (float32
    (N, 1, 28, 28) in [0, 1]), y_* (int64 (N,)), idx_* (indices into the source split), source, protocol, note.
    root, download: as in `load_images`; dataset='fashion_mnist': protocol 'fashion_paper' / 'fashion_offline'."""
    with warnings.catch_warnings():  # the fallback to the test split is stated in 'note'
        warnings.simplefilter("ignore", UserWarning)
        x, y, info = load_images(dataset, train=True, root=root, pixels="01", download=download)
    if info["split"] == "train":
        if len(x) < 51000:
            raise ValueError(f"the {dataset} training split in {info['root']} has {len(x)} images, not 60,000: "
                             f"are the train-* and t10k-* files swapped or cut? Restore the published files")
        xt, yt, _ = load_images(dataset, train=False, root=root, pixels="01", download=download)
        idx = {"train": torch.arange(0, 50000), "valid": torch.arange(50000, 51000), "test": torch.arange(len(xt))}
        parts = {"train": (x, y), "valid": (x, y), "test": (xt, yt)}
        source = {"train": "train", "valid": "train", "test": "test"}
        protocol, note = "paper", ("paper protocol: train on MNIST train[0:50000], sigma on train[50000:51000], "
                                   "score the 10,000 test images")
    else:
        if sum(OFFLINE_SIZES.values()) > len(x):
            raise ValueError(f"the offline protocol needs {sum(OFFLINE_SIZES.values())} test images, found {len(x)}")
        perm = torch.from_numpy(np.random.RandomState(OFFLINE_SEED).permutation(len(x)))
        cuts = np.cumsum([0, *OFFLINE_SIZES.values()])
        idx = {k: perm[cuts[i]:cuts[i + 1]] for i, k in enumerate(("train", "valid", "test"))}
        parts = {k: (x, y) for k in idx}
        source = {k: "test" for k in idx}
        protocol, note = "offline", (f"offline protocol (no MNIST training split here): the 10,000 TEST images, "
                                     f"permuted with seed {OFFLINE_SEED}, split into 8000 train / 1000 "
                                     f"validation / 1000 scored; no scored image is trained on")
    if dataset != "mnist":
        protocol, note = f"fashion_{protocol}", note.replace("MNIST", "Fashion-MNIST")
    out = {"protocol": protocol, "note": note, "source": source, "dataset": dataset}
    for k, (images, labels) in parts.items():
        out[f"x_{k}"], out[f"y_{k}"] = images[idx[k]].to(device), labels[idx[k]].to(device)
        out[f"idx_{k}"] = idx[k]
    return out


def install_debian_fashion_mnist(root=None, source=DEBIAN_FASHION_DIR):
    """Decompress Debian's Fashion-MNIST (apt-get install dataset-fashion-mnist) into <root>/FashionMNIST/raw,
    root defaulting to `user_cache_dir()`, where `load_images('fashion_mnist')` finds it. Each file is md5-checked,
    then written atomically; a good file already there is kept, a bad one replaced."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source} does not exist: run `apt-get install dataset-fashion-mnist`")
    raw_dir = Path(root or user_cache_dir()).expanduser() / "FashionMNIST" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for gz in sorted(source.glob("*-ubyte.gz")):
        target = raw_dir / gz.name[:-3]
        if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == _expected_md5("fashion_mnist", target):
            continue   # a good copy; a truncated or wrong leftover is replaced
        read_idx(gz, _expected_md5("fashion_mnist", target))          # checked before anything is written
        save_atomic(target, lambda f: f.write(_read_bytes(gz)))
    return raw_dir
