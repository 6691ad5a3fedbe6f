"""Lesson 05's code: its DCGAN (`dcgan`, `dcgan_run`), a convolution taken apart (`conv_matrix`, `overlap_counts`)."""
import torch
from torch import nn

from ..callbacks import Watcher
from ..classifier import load_classifier
from ..data import TensorBatches, make_noise
from ..losses import matching_aware_loss
from ..metrics import checkerboard_score, classifier_features, generator_scores
from ..mnist import OFFLINE_SEED
from ..models import DCGANDiscriminator, DCGANGenerator
from ..runs import train_run
from ..steps import generate, make_optimizer
from ..utils import seed_everything


def dcgan(noise_dim=64, width=16, upsample=False, n_classes=0, lr=2e-4, betas=(0.5, 0.999), seed=0, device="cpu",
          conditioning="concat", minibatch=0):
    """(G, D, opt_g, opt_d), seeded: notebook 05's DCGAN for 28 x 28 pixels in [0, 1], Adam; n_classes=10: the
    conditional pair (D's `conditioning`); minibatch: D's minibatch-discrimination kernels."""
    seed_everything(seed)
    G = DCGANGenerator(noise_dim, width=width, upsample=upsample, n_classes=n_classes, pixels="01").to(device)
    D = DCGANDiscriminator(width=width, n_classes=n_classes, conditioning=conditioning, minibatch=minibatch).to(device)
    return G, D, make_optimizer(G, lr=lr, betas=betas), make_optimizer(D, lr=lr, betas=betas)


def dcgan_run(split, *, epochs, name="05_dcgan", width=16, upsample=False, conditional=False, lr=2e-4,
              betas=(0.5, 0.999), seed=0, classifier=None, device="cpu", progress=True, folder=None,
              conditioning="concat", minibatch=16, fast=False):
    """Train `dcgan` on split['x_train'] (batch 128, noise 64, non-saturating; conditional: matching-aware) through
    `train_run`. The Watcher keeps 100 fixed samples (conditional: a row per digit) and scores 1,000: modes, kl,
    frechet, checker_db, nyquist_db (+ 'accuracy' if conditional). conditioning, minibatch: a conditional D's;
    fast: the CUDA-graph path. Returns (G, D, watcher, history)."""
    classifier = classifier if classifier is not None else load_classifier(split, device=device, verbose=False)
    settings = {"data": split["protocol"], "dataset": split.get("dataset", "mnist"), "n_train": len(split["x_train"]),
                "n_valid": len(split["x_valid"]), "split_seed": OFFLINE_SEED if "offline" in split["protocol"] else None,
                "seed": seed, "noise_dim": 64,
                "batch": 128, "model": "dcgan", "width": width, "upsample": upsample, "conditional": conditional,
                "lr": lr, "betas": list(betas), "loss": "nonsaturating", "epochs": epochs, "n_eval": 1000}
    if conditional:
        settings.update(conditioning=conditioning, loss="matching_aware", minibatch=minibatch)
    z_eval = torch.randn(1000, 64, generator=torch.Generator().manual_seed(1)).to(device)
    z_fixed = torch.randn(100, 64, generator=torch.Generator().manual_seed(123)).to(device)
    y_eval = torch.arange(10, device=device).repeat(100) if conditional else None
    y_fixed = torch.arange(10, device=device).repeat_interleave(10) if conditional else None
    f_valid = classifier_features(split["x_valid"][:1000], classifier)
    def score(G):
        out = generator_scores(G, z_eval, f_valid, classifier, y=y_eval)
        checker = checkerboard_score(generate(G, z_eval, y_eval), 4)
        return {**out, "checker_db": checker["mean_db"], "nyquist_db": checker["nyquist_db"]}
    G, D, opt_g, opt_d = dcgan(64, width, upsample, 10 if conditional else 0, lr, betas, seed, device, conditioning,
                               minibatch if conditional else 0)
    x = split["x_train"].to(device)
    data = TensorBatches(x, 128, labels=split["y_train"].to(device) if conditional else None, n_classes=10)
    watcher = Watcher(z_fixed, score, len(data), y_fixed=y_fixed)
    history = train_run(G, D, data, name=name, settings=settings, watcher=watcher, epochs=epochs, folder=folder,
                        progress=progress, noise=make_noise(64, device=device), opt_g=opt_g, opt_d=opt_d,
                        loss=matching_aware_loss() if conditional else "nonsaturating", fast=fast)
    return G, D, watcher, history


def conv_matrix(kernel, n, stride=1, padding=0):
    """The matrix C of F.conv2d with one k x k kernel on an n x n image: C @ x.flatten() == F.conv2d(x, kernel,
    stride=stride, padding=padding).flatten(); C.T is the transposed convolution. Row i * m + j is output pixel
    (i, j), m = (n + 2 padding - k) // stride + 1. kernel: (k, k) tensor -> C: (m * m, n * n)."""
    if not torch.is_tensor(kernel) or kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel must be a square (k, k) tensor, got "
                         f"{tuple(kernel.shape) if torch.is_tensor(kernel) else type(kernel).__name__}")
    k = kernel.shape[0]
    m = (n + 2 * padding - k) // stride + 1
    if stride < 1 or padding < 0 or m < 1:
        raise ValueError(f"a {k}x{k} kernel does not fit an {n}x{n} input with stride {stride} and padding "
                         f"{padding}: use n >= k - 2 padding, stride >= 1, padding >= 0")
    pixels = torch.eye(n * n, dtype=kernel.dtype, device=kernel.device).view(n * n, 1, n, n)   # one image per pixel
    columns = nn.functional.conv2d(pixels, kernel.view(1, 1, k, k), stride=stride, padding=padding)
    return columns.view(n * n, m * m).T.contiguous()    # column j: the convolution of input pixel j alone


def overlap_counts(kernel_size, stride, size, device="cpu"):
    """How many input pixels a stride-`stride` transposed convolution (no padding) adds into each output pixel:
    uniform inside when k is a multiple of the stride, else a checkerboard. -> (H, W), H = W = (size - 1) stride + k."""
    if min(kernel_size, stride, size) < 1:
        raise ValueError(f"kernel_size, stride and size must be >= 1, got {kernel_size}, {stride}, {size}")
    ones = torch.ones(1, 1, size, size, device=device)
    weight = torch.ones(1, 1, kernel_size, kernel_size, device=device)
    return nn.functional.conv_transpose2d(ones, weight, stride=stride)[0, 0]
