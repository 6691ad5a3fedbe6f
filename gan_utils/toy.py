"""The toy experiments of lessons 01 (a 1D Gaussian) and 02 (a line segment in the plane).

What both lessons need, written once: a fresh pair of small MLPs (`make_players`), a training run
on fresh samples that records snapshots (`train_toy`), the snapshot nearest a step (`frame_at`),
the metrics each lesson tracks (`gaussian_metrics`, `segment_metrics`) and the distance of points
to a line *segment* (`segment_distances`), not to the infinite line.

    from gan_utils import toy
    G, D = toy.make_players(data_dim=1, noise_dim=4, hidden=32, device=device)
    history, snaps = toy.train_toy(G, D, lambda n: gu.sample_gaussian_1d(n, 4, 1.25, device),
                                   steps=3000, batch=1024, z_eval=torch.randn(5000, 4),
                                   metrics=lambda fake: toy.gaussian_metrics(fake, 4, 1.25))
"""
import numpy as np
import torch

from .data import ToyBatches, make_noise
from .losses import get_losses
from .metrics import ks_to_gaussian, line_coverage, segment_distances, w1_to_gaussian
from .models import MLPDiscriminator, MLPGenerator
from .train import make_optimizer, train_gan
from .utils import seed_everything
from .viz import SnapshotCollector


def make_players(data_dim, noise_dim, hidden, seed=0, device="cpu"):
    """A fresh (G, D) pair of toy MLPs, both with two hidden layers of `hidden` units:
    G: R^noise_dim -> R^data_dim (ReLU, no output squashing); D: R^data_dim -> one logit
    (LeakyReLU). The same seed gives the same initial weights (the global RNGs are seeded)."""
    seed_everything(seed)
    G = MLPGenerator(noise_dim, out_shape=(data_dim,), widths=(hidden, hidden), norm=None, out=None)
    D = MLPDiscriminator(in_dim=data_dim, widths=(hidden, hidden))
    return G.to(device), D.to(device)


def frame_at(snapshots, step):
    """The frame of a `SnapshotCollector` (or a list of frames) whose G step is closest to `step`."""
    frames = snapshots.frames if hasattr(snapshots, "frames") else snapshots
    if not frames:
        raise ValueError("no snapshots were recorded")
    return min(frames, key=lambda f: abs(f["step"] - step))


def train_toy(G, D, sample, *, steps, batch, z_eval, metrics=None, loss="nonsaturating", k=1,
              lr_g=1e-3, lr_d=None, optimizer="adam", betas=(0.5, 0.9), momentum=0.0,
              snap_every=50, progress=True, seed=0):
    """Train (G, D) for `steps` G steps with `train_gan` on fresh minibatches of `sample(batch)`.

    sample: n -> (n, data_dim) real points, on G's device; z_eval: fixed noise (n, noise_dim) for
    the snapshots; metrics(fake) -> dict of floats, stored in every snapshot; loss, k: as in
    `train_gan`; lr_d defaults to lr_g; optimizer 'adam' (with `betas`) or 'sgd' (with `momentum`).
    Seeds the global RNGs with `seed` first, so the same call gives the same run.
    Returns (history, snapshots): `train_gan`'s history and a `SnapshotCollector` with a frame
    at step 0 and every `snap_every` G steps."""
    seed_everything(seed)
    device = next(G.parameters()).device
    snaps = SnapshotCollector(z_eval.to(device), metrics)
    options = {"adam": {"betas": betas}, "sgd": {"momentum": momentum}}
    if optimizer not in options:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    history = train_gan(G, D, ToyBatches(sample, batch, steps * k), noise=make_noise(G.noise_dim, device=device),
                        epochs=1, opt_g=make_optimizer(G, optimizer, lr=lr_g, **options[optimizer]),
                        opt_d=make_optimizer(D, optimizer, lr=lr_d or lr_g, **options[optimizer]),
                        loss=get_losses(loss), k=k, callback=snaps, callback_every=snap_every,
                        progress=progress)
    return history, snaps


def log_step(history, step, loss_d, loss_g, real_out, fake_out):
    """Append one G step to a history of `train.new_history()` in a hand-written loop: the losses
    and the mean D(x) on real and D(G(z)) on fake points (D's logits turned into probabilities)."""
    values = [step, 0, float(loss_d), float(loss_g), torch.sigmoid(real_out).mean().item(),
              torch.sigmoid(fake_out).mean().item()]
    for key, value in zip(("step", "epoch", "loss_d", "loss_g", "d_real", "d_fake"), values):
        history[key].append(value)
    return history


def gaussian_metrics(fake, mu, sigma):
    """Lesson 01's distances of G's samples (n, 1) to N(mu, sigma^2): {'w1', 'ks'}."""
    return {"w1": w1_to_gaussian(fake, mu, sigma), "ks": ks_to_gaussian(fake, mu, sigma)}


def fraction_near_segment(points, slope, intercept, x_range, tol=0.1):
    """Fraction of points within `tol` of the segment (see `segment_distances`). points: (n, 2)."""
    return float((segment_distances(points, slope, intercept, x_range) <= tol).mean())


def segment_metrics(fake, slope, intercept, x_range, tol=0.1):
    """Lesson 02's quality and coverage of G's points (n, 2) against the segment:
    'dist' mean distance to the segment, 'near' fraction within `tol` of it, 'coverage' the
    fraction of the segment's 20 pieces that get their share of points (`metrics.line_coverage`)."""
    d = segment_distances(fake, slope, intercept, x_range)
    return {"dist": float(d.mean()), "near": float((d <= tol).mean()),
            "coverage": line_coverage(fake, slope, intercept, x_range, tol=tol)}


def run_summary(start, device):
    """One line for a notebook's last cell: the profile, the seconds since `start`
    (a time.perf_counter() value), and the hardware that made the stored outputs (with the
    1-minute load average: a busy machine explains a slow run)."""
    import os
    import time

    from .utils import cpu_name, get_profile

    device = torch.device(device)
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = f"{os.cpu_count()} CPU cores, {cpu_name()}, {torch.get_num_threads()} torch thread(s)"
    load = ", load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return (f"profile {get_profile()}: {time.perf_counter() - start:.0f} s on {device} ({hardware}{load}), "
            f"torch {torch.__version__}")
