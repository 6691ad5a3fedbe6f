"""Toy targets, noise priors and in-memory minibatches. Samplers return float32 (n, dim) on `device`, drawn with
torch's global RNG (or the `generator` passed, on its device). MNIST is `gan_utils.mnist`."""
import math

import torch

from .models import check_labels


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
    """n points on y = slope * x + intercept, x ~ U(x_range), plus perpendicular N(0, noise^2). Returns (n, 2)."""
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


def sample_mixture_2d(n, centers, std=0.02, device="cpu", generator=None):
    """n points of the equal-weight mixture of N(c, std^2 I) at `centers` (m, 2). Returns (n, 2)."""
    device = generator.device if generator is not None else device
    centers = centers.to(device)
    idx = torch.randint(len(centers), (n,), generator=generator, device=device)
    return centers[idx] + std * torch.randn(n, 2, generator=generator, device=device)


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
    return lambda n: sample_noise(n, dim, kind, device)


# ----------------------------------------------------------------------------- minibatches
class TensorBatches:
    """Shuffled minibatches (batch_size, *item_shape) of a tensor in memory, a new order each epoch, the last partial
    batch dropped. labels (N,) int64 (int32, uint8) in [0, n_classes), checked once: (images, labels) pairs instead."""

    def __init__(self, data, batch_size, labels=None, n_classes=None):
        if not torch.is_tensor(data) or data.ndim < 2:
            raise ValueError("data must be a tensor of shape (N, ...) with one example per row")
        if not 1 <= batch_size <= len(data):
            raise ValueError(f"batch_size must be between 1 and the {len(data)} examples, got {batch_size}")
        if labels is not None:   # checked once here, so that no training step reads labels back to the host
            if torch.is_tensor(labels) and labels.device != data.device:
                raise ValueError(f"labels must be on the data's device {data.device}, got {labels.device}")
            top = n_classes if n_classes is not None else int(labels.max()) + 1 if torch.is_tensor(labels) and labels.numel() else 1
            check_labels(labels, len(data), top, "TensorBatches", values=True)
        self.data, self.batch_size, self.labels = data, batch_size, labels

    def __len__(self):
        return len(self.data) // self.batch_size

    def __iter__(self):
        n = len(self) * self.batch_size
        order = torch.randperm(len(self.data), device=self.data.device)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.data[idx] if self.labels is None else (self.data[idx], self.labels[idx])


class ToyBatches:
    """Fresh minibatches from a sampler: ``ToyBatches(lambda n: sample_gaussian_1d(n), 64, 100)`` is an 'epoch' of 100
    batches of shape (64, 1)."""

    def __init__(self, sampler, batch_size, batches_per_epoch=100):
        if batch_size < 1 or batches_per_epoch < 1:
            raise ValueError("batch_size and batches_per_epoch must be at least 1")
        self.sampler, self.batch_size, self.batches_per_epoch = sampler, batch_size, batches_per_epoch

    def __len__(self):
        return self.batches_per_epoch

    def __iter__(self):
        for _ in range(self.batches_per_epoch):
            yield self.sampler(self.batch_size)


# ----------------------------------------------------------------------------- images
def check_pixels(images, what="images"):
    """Raise ValueError unless `images` (tensor or array, any shape) is non-empty, finite and in [0, 1]."""
    x = torch.as_tensor(images)
    if x.numel() == 0:
        raise ValueError(f"{what}: got no images (shape {tuple(x.shape)}); pass at least one")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what}: {int((~torch.isfinite(x)).sum())} of {x.numel()} values are NaN or infinite; check "
                         f"the generator (did training diverge?) before scoring its samples")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{what}: pixels must be in [0, 1], found [{lo:.3f}, {hi:.3f}]. For a tanh generator "
                         f"(outputs in [-1, 1]) pass (x + 1) / 2")
