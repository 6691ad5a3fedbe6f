"""Plots of a GAN at work; each draws on `ax` (a new figure if None) and returns the axes (or animation)."""
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import animation
from scipy.stats import gaussian_kde
from torchvision.utils import make_grid

from .losses import generator_loss_nonsaturating, generator_loss_saturating
from .steps import generate


# Readable on a projected slide (18 pt at 80 dpi stays >= 15 px in reveal.js) while a figure is at most
# FIGURE_WIDTH inches wide, with 1 or 2 panels a row.
FIGURE_WIDTH = 11.0
COURSE_STYLE = {
    "figure.dpi": 80, "savefig.dpi": 80, "figure.figsize": (FIGURE_WIDTH, 4.5),
    "font.size": 18, "axes.titlesize": 19, "axes.labelsize": 18, "xtick.labelsize": 18,
    "ytick.labelsize": 18, "legend.fontsize": 16, "legend.framealpha": 0.85, "lines.linewidth": 2,
    "axes.grid": True, "grid.alpha": 0.3,
}


def use_course_style():
    """Apply the course's matplotlib settings (`COURSE_STYLE`) to every later figure."""
    plt.rcParams.update(COURSE_STYLE)


def _ax(ax, figsize=(6, 4)):
    return ax if ax is not None else plt.subplots(figsize=figsize)[1]


def _smooth(values, window):
    if window <= 1 or len(values) < window:
        return np.asarray(values, dtype=float)
    return np.convolve(values, np.ones(window) / window, mode="valid")


def _plot_history(ax, history, smooth, keys_labels):
    """Each history[key] (moving average over `smooth` steps) against the G step, on `ax` (a new one if None)."""
    ax = _ax(ax)
    for key, label in keys_labels:
        y = _smooth(history[key], smooth)
        ax.plot(history["step"][len(history["step"]) - len(y):], y, label=label)
    return ax


def plot_losses(history, ax=None, smooth=1):
    """D and G loss per G step (moving average over `smooth` steps)."""
    ax = _plot_history(ax, history, smooth, (("loss_d", "D loss"), ("loss_g", "G loss")))
    ax.set(xlabel="generator step", ylabel="loss", title="Losses")
    ax.legend()
    return ax


def plot_d_outputs(history, ax=None, smooth=1, critic=False):
    """Mean D(x) and D(G(z)) per G step, with the equilibrium 1/2 (critic=True: raw scores, no 1/2 line)."""
    ax = _plot_history(ax, history, smooth, (("d_real", "D(x), real"), ("d_fake", "D(G(z)), fake")))
    if not critic:
        ax.axhline(0.5, color="gray", ls=":", lw=1, label="1/2")
        ax.set_ylim(-0.02, 1.02)
    ax.set(xlabel="generator step", ylabel="critic score" if critic else "mean D output", title="Discriminator outputs")
    ax.legend()
    return ax


def show_images(images, nrow=8, ax=None, title=None):
    """A grid of images (N, C, H, W) with torchvision's make_grid; values in [0, 1] or [-1, 1]."""
    images = images.detach().cpu().float()
    value_range = (-1, 1) if images.min() < 0 else (0, 1)
    grid = make_grid(images, nrow=nrow, padding=2, normalize=True, value_range=value_range, pad_value=1)
    ax = _ax(ax, figsize=(nrow * 0.6, len(images) / nrow * 0.6 + 0.4))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def _d_prob(D, x):
    """D(x) = sigmoid(logit) on x (n, ...), in evaluation mode: (n,) array."""
    return torch.sigmoid(generate(D, x)).squeeze(1).cpu().numpy()


def plot_1d(ax, x_grid, data_pdf, fake, D=None, optimal_d=False, title=None):
    """Figure 1 of Goodfellow et al. 2014: p_data (black dots), a histogram of `fake` (green), D(x) (blue dashes),
    optionally D*(x) = p_data / (p_data + p_g), p_g a KDE (red). x_grid: (m,) tensor; data_pdf: (m,); fake: (n, 1).
    The y axis stops at max(1.05, 1.1 max p_data); taller bars are cut and their peak labelled."""
    ax = _ax(ax)
    x, p_data = x_grid.cpu().numpy(), np.asarray(data_pdf)
    p_g, edges = np.histogram(fake.detach().cpu().numpy().ravel(), bins=60, range=(x[0], x[-1]), density=True)
    ax.plot(x, p_data, "k:", lw=2, label="data p_data(x)")
    ax.stairs(p_g, edges, color="tab:green", fill=True, alpha=0.35, label="generator p_g(x)")
    if D is not None:
        ax.plot(x, _d_prob(D, x_grid.view(-1, 1).to(next(D.parameters()).device)), "b--", lw=2, label="D(x)")
    if optimal_d:  # p_g estimated with a Gaussian kernel density estimate (smoother than bins)
        p_g_on_grid = gaussian_kde(fake.detach().cpu().double().numpy().ravel())(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            d_star = np.where(p_data + p_g_on_grid > 1e-3, p_data / (p_data + p_g_on_grid), np.nan)
        ax.plot(x, d_star, color="tab:red", lw=1.5, alpha=0.8, label="D*(x)")
    top = max(1.05, p_data.max() * 1.1)
    ax.set_ylim(0, top)
    if p_g.max() > top:  # a spike (G's samples piled up): say how tall it really is
        cut = np.flatnonzero(p_g > top)
        centres = (edges[cut] + edges[cut + 1]) / 2
        ax.plot(centres, np.full(len(cut), top), "v", color="tab:green", ms=9, clip_on=False)
        ax.annotate(f"p_g peak {p_g.max():.1f} (cut)", (centres[np.argmax(p_g[cut])], top), xytext=(8, -6),
                    textcoords="offset points", ha="left", va="top", color="tab:green", fontsize="small",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    ax.set(xlabel="x", ylabel="density, D(x)", title=title)
    return ax


def plot_2d(ax, real, fake, D=None, xlim=(-3, 3), ylim=(-3, 3), title=None, res=120, colorbar=True, legend=True):
    """Real (black) and generated (orange) points, real, fake: (n, 2), over D(x) as a heat map (blue 'fake', red
    'real'). colorbar=False leaves the colour bar to the caller."""
    ax = _ax(ax, figsize=(5, 5))
    if D is not None:
        xs, ys = np.linspace(*xlim, res), np.linspace(*ylim, res)
        grid = torch.tensor(np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2), dtype=torch.float32)
        d = _d_prob(D, grid.to(next(D.parameters()).device)).reshape(res, res)
        im = ax.imshow(d, origin="lower", extent=(*xlim, *ylim), cmap="coolwarm", aspect="auto", vmin=0, vmax=1)
        if colorbar:
            ax.figure.colorbar(im, ax=ax, fraction=0.046, label="D(x)")
    r, f = real.detach().cpu().numpy(), fake.detach().cpu().numpy()
    ax.scatter(r[:, 0], r[:, 1], s=4, c="k", alpha=0.5, label="real")
    ax.scatter(f[:, 0], f[:, 1], s=4, c="tab:orange", alpha=0.6, label="generated")
    ax.set(xlim=xlim, ylim=ylim, title=title, xlabel="x", ylabel="y")
    if legend:
        ax.legend(loc="upper left", markerscale=4)
    return ax


def animate(frames, draw, figsize=(6, 4), interval=200):
    """A matplotlib animation, draw(ax, frame) for each of `frames` (its figure closed, so it shows once)."""
    fig, ax = plt.subplots(figsize=figsize)
    def update(i):
        for extra in fig.axes[1:]:  # colorbars from the previous frame
            extra.remove()
        ax.clear()
        draw(ax, frames[i])
    anim = animation.FuncAnimation(fig, update, frames=len(frames), interval=interval)
    plt.close(fig)
    return anim


def plot_metrics(snapshots, keys, ax=None, labels=None, targets=None, logy=False, title="Metrics", ylabel=None,
                 target_labels=None):
    """Metrics of a SnapshotCollector (or a list of frames) against the G step, one line per key; targets:
    {key: value} dotted goal lines, labelled by target_labels (default 'goal for <label>')."""
    ax = _ax(ax)
    frames = snapshots.frames if hasattr(snapshots, "frames") else snapshots
    steps = [f["step"] for f in frames]
    labels, target_labels = labels or {}, target_labels or {}
    for key in keys:
        line, = ax.plot(steps, [f[key] for f in frames], marker=".", label=labels.get(key, key))
        if targets and key in targets:
            ax.axhline(targets[key], color=line.get_color(), ls=":", lw=1.5,
                       label=target_labels.get(key, f"goal for {labels.get(key, key)}"))
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel="generator step", ylabel=ylabel, title=title)
    ax.legend()
    return ax


def plot_generator_losses(axes=None, d_min=1e-3):
    """The saturating (|d/dl| = D) and non-saturating (|d/dl| = 1 - D) G losses and their gradient size against
    D(G(z)), l = D's logit, by autograd. axes: two axes (a new 1x2 figure if None)."""
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(FIGURE_WIDTH, 4.2), layout="constrained")[1]
    d = torch.linspace(d_min, 1 - d_min, 400, dtype=torch.float64)
    logits = torch.log(d / (1 - d)).view(-1, 1).requires_grad_(True)
    for name, fn in (("saturating  log(1 - D)", generator_loss_saturating),
                     ("non-saturating  -log D", generator_loss_nonsaturating)):
        per_example = torch.stack([fn(l.view(1, 1)) for l in logits])  # one loss per D value
        grad, = torch.autograd.grad(per_example.sum(), logits)
        axes[0].plot(d.numpy(), per_example.detach().numpy(), lw=2, label=name)
        axes[1].plot(d.numpy(), grad.abs().view(-1).numpy(), lw=2, label=name)
    axes[0].set(xlabel="D(G(z))", ylabel="generator loss (minimized)", title="G's loss")
    axes[1].set(xlabel="D(G(z))", ylabel="|dL/dl|  (l = D's logit)", title="Size of G's gradient")
    for ax in axes:
        ax.axvspan(0, 0.1, color="gray", alpha=0.15)
    axes[0].legend(fontsize="small", loc="lower left")          # the same colours in both panels
    axes[1].annotate("shaded: early training,\nD rejects the fakes", xy=(0.13, 0.83), fontsize="small")
    return axes
