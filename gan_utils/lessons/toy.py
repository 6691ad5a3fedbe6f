"""The toy experiments of lessons 01 (a 1D Gaussian) and 02 (a line segment in the plane):
    from gan_utils.lessons import toy
    G, D = toy.make_players(data_dim=1, noise_dim=4, hidden=32, device=device)
    history, snaps = toy.train_toy(G, D, lambda n: gu.sample_gaussian_1d(n, 4, 1.25, device),
                                   steps=3000, batch=1024, z_eval=torch.randn(5000, 4),
                                   metrics=lambda fake: toy.gaussian_metrics(fake, 4, 1.25))
"""
import torch

from ..callbacks import HISTORY_KEYS, SnapshotCollector
from ..data import ToyBatches, make_noise
from ..losses import get_loss
from ..metrics import ks_to_gaussian, line_coverage, segment_distances, w1_to_gaussian
from ..models import MLPDiscriminator, MLPGenerator
from ..steps import make_optimizer
from ..train import train_gan
from ..utils import seed_everything


def make_players(data_dim, noise_dim, hidden, seed=0, device="cpu"):
    """Seeded MLPs (G, D) with two hidden layers of `hidden` units: G (N, noise_dim) -> (N, data_dim), D -> (N, 1)."""
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
    """Train (G, D), seeded, for `steps` G steps with `train_gan` on fresh batches of sample: n -> (n, data_dim) on
    G's device. z_eval: fixed noise (n, noise_dim) for the snapshots; metrics(fake) -> dict of floats; loss, k: as
    in `train_gan`; lr_d defaults to lr_g; optimizer 'adam' (`betas`) or 'sgd' (`momentum`).
    Returns (history, a `SnapshotCollector` with a frame at step 0 and every `snap_every` G steps)."""
    seed_everything(seed)
    device = next(G.parameters()).device
    snaps = SnapshotCollector(z_eval.to(device), metrics, every=snap_every)
    options = {"adam": {"betas": betas}, "sgd": {"momentum": momentum}}
    if optimizer not in options:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    history = train_gan(G, D, ToyBatches(sample, batch, steps * k), noise=make_noise(G.noise_dim, device=device),
                        epochs=1, opt_g=make_optimizer(G, optimizer, lr=lr_g, **options[optimizer]),
                        opt_d=make_optimizer(D, optimizer, lr=lr_d or lr_g, **options[optimizer]),
                        loss=get_loss(loss) if isinstance(loss, str) else loss, k=k, callback=snaps,
                        progress=progress)
    return history, snaps


def log_step(history, step, loss_d, loss_g, real_out, fake_out):
    """Append one G step (losses; mean sigmoid of the logits real_out, fake_out) to a `new_history()`."""
    values = [step, 0, float(loss_d), float(loss_g), torch.sigmoid(real_out).mean().item(),
              torch.sigmoid(fake_out).mean().item()]
    for key, value in zip(HISTORY_KEYS, values):
        history[key].append(value)
    return history


def gaussian_metrics(fake, mu, sigma):
    """Lesson 01's distances of G's samples (n, 1) to N(mu, sigma^2): {'w1', 'ks'}."""
    return {"w1": w1_to_gaussian(fake, mu, sigma), "ks": ks_to_gaussian(fake, mu, sigma)}


def segment_metrics(fake, slope, intercept, x_range, tol=0.1):
    """Lesson 02's metrics of points (n, 2): 'dist' mean distance to the segment, 'near' (within tol), 'coverage'."""
    d = segment_distances(fake, slope, intercept, x_range)
    return {"dist": float(d.mean()), "near": float((d <= tol).mean()),
            "coverage": line_coverage(fake, slope, intercept, x_range, tol=tol)}
