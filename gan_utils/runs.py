"""Long training runs that survive a restart, keyed to their settings.

A lesson's main run (notebook 03: 250 epochs) takes minutes on a GPU and most of an hour on a CPU.
`train_run` calls `train_gan` with a checkpoint whose file name is a hash of the run's settings:
rerunning the notebook with the same settings resumes (or reloads a finished run); changing any
setting starts a new run in a new file, never silently continuing an old one. A `Watcher`
callback records what the lesson shows of the run (one snapshot of fixed noise per epoch, a
validation score every few epochs, the best G and D so far for early stopping); its state is
saved beside the checkpoint, so the pictures survive the restart too.
"""
import copy
import hashlib
import json
import os
import time
from pathlib import Path

import torch

from .data import CHECKOUT_DIR, user_cache_dir
from .classifier import load_classifier
from .data import TensorBatches, make_noise
from .losses import matching_aware_loss
from .metrics import checkerboard_score, classifier_features, generator_scores
from .models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from .train import generate, make_optimizer, train_gan
from .utils import cpu_name, seed_everything

CHECKPOINT_DIR_VARIABLE = "GAN_CHECKPOINT_DIR"


def mlp_gan(noise_dim=64, lr=2e-4, betas=(0.5, 0.999), seed=0, device="cpu"):
    """(G, D, opt_g, opt_d): the course's MLP GAN (notebook 03) with Adam for both players; the same
    seed gives the same initial weights."""
    seed_everything(seed)
    G = MLPGenerator(noise_dim=noise_dim).to(device)
    D = MLPDiscriminator().to(device)
    return G, D, make_optimizer(G, lr=lr, betas=betas), make_optimizer(D, lr=lr, betas=betas)


def dcgan(noise_dim=64, width=16, upsample=False, n_classes=0, lr=2e-4, betas=(0.5, 0.999), seed=0, device="cpu",
          conditioning="concat", minibatch=0):
    """(G, D, opt_g, opt_d): notebook 05's DCGAN for 28 x 28 images with pixels in [0, 1] (G's Tanh
    rescaled, pixels='01'), Adam for both players; n_classes=10: the conditional pair (label
    embedding in G; D with the label map as an input channel, or conditioning='projection');
    minibatch: D's minibatch-discrimination kernels (0: none).
    The same seed gives the same initial weights."""
    seed_everything(seed)
    G = DCGANGenerator(noise_dim, width=width, upsample=upsample, n_classes=n_classes, pixels="01").to(device)
    D = DCGANDiscriminator(width=width, n_classes=n_classes, conditioning=conditioning, minibatch=minibatch).to(device)
    return G, D, make_optimizer(G, lr=lr, betas=betas), make_optimizer(D, lr=lr, betas=betas)


def dcgan_run(split, *, epochs, name="05_dcgan", width=16, upsample=False, conditional=False, lr=2e-4,
              betas=(0.5, 0.999), seed=0, classifier=None, device="cpu", progress=True, folder=None,
              conditioning="concat", minibatch=16, fast=False):
    """Train notebook 05's DCGAN (`dcgan`) on split['x_train'] with batch 128, noise 64 and the
    non-saturating loss (conditional: with the matching-aware D, `losses.matching_aware_loss`), through `train_run` (checkpointed, resumed, reloaded when done).
    Every epoch the Watcher keeps 100 fixed-noise samples (conditional: digits 0-9, ten each,
    one row per digit) and scores 1,000 fixed-noise samples: modes, kl, frechet (to the validation
    images), the checkerboard score 'checker_db' and 'nyquist_db' (`checkerboard_score`, stride 4),
    and for a conditional G the 'accuracy' of its requested labels (100 per digit); conditioning:
    how its D reads the label ('concat' or 'projection', see DCGANDiscriminator); minibatch: a
    conditional D's minibatch-discrimination kernels (without them G learned to ignore z and drew
    one image per label); fast: train_gan's CUDA-graph path (`gan_utils.fast`; eager on a CPU).
    Returns (G, D, watcher, history)."""
    classifier = classifier if classifier is not None else load_classifier(split, device=device, verbose=False)
    settings = {"data": split["protocol"], "n_train": len(split["x_train"]), "seed": seed, "noise_dim": 64,
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
    data = TensorBatches(x, 128, labels=split["y_train"].to(device) if conditional else None)
    watcher = Watcher(z_fixed, score, len(data), y_fixed=y_fixed)
    history = train_run(G, D, data, name=name, settings=settings, watcher=watcher, epochs=epochs, folder=folder,
                        progress=progress, noise=make_noise(64, device=device), opt_g=opt_g, opt_d=opt_d,
                        loss=matching_aware_loss() if conditional else "nonsaturating", fast=fast)
    return G, D, watcher, history


def settings_key(settings):
    """A 12-character hash of a dict of settings (JSON-serialisable values): same settings, same key."""
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict such as {{'lr': 2e-4, 'epochs': 250}}, got {type(settings).__name__}")
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def checkpoint_dir():
    """Where runs are checkpointed: $GAN_CHECKPOINT_DIR; else the checkout's checkpoints/ folder
    when the package runs from a checkout (git ignores it); else `user_cache_dir()/checkpoints`."""
    if os.environ.get(CHECKPOINT_DIR_VARIABLE):
        return Path(os.environ[CHECKPOINT_DIR_VARIABLE]).expanduser()
    if (CHECKOUT_DIR / "pyproject.toml").is_file():
        return CHECKOUT_DIR / "checkpoints"
    return user_cache_dir() / "checkpoints"


def hardware(device):
    """One line naming the machine a run used: the GPU, or the CPU with its torch threads."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


class Watcher:
    """A train_gan callback, called once per epoch (callback_every = steps per epoch): keeps
    `snapshots[epoch]`, G(z_fixed) as uint8 (N, C, H, W); `scores[epoch]` = score(G), a dict,
    every `eval_every` epochs and at epoch 1; and `best`, the epoch, score and state_dicts of G and
    D with the lowest score[monitor] (early stopping; epoch 0, the untrained G, never counts).
    A conditional G draws its snapshots for the labels y_fixed (N,).
    `seconds` adds up the wall time between calls: training plus scoring, across restarts."""

    def __init__(self, z_fixed, score, steps_per_epoch, eval_every=1, monitor="frechet", y_fixed=None):
        self.z_fixed, self.score, self.steps_per_epoch, self.y_fixed = z_fixed, score, steps_per_epoch, y_fixed
        self.eval_every, self.monitor = eval_every, monitor
        self.snapshots, self.scores, self.seconds, self.trained_on = {}, {}, 0.0, None
        self.best = self.previous_best = {"epoch": None, "value": float("inf")}
        self._tick = None

    def __call__(self, step, G, D, history):
        now = time.perf_counter()
        if self._tick is not None:
            self.seconds += now - self._tick
        epoch = step // self.steps_per_epoch
        self.snapshots[epoch] = (generate(G, self.z_fixed, self.y_fixed) * 255).round().to(torch.uint8).cpu()
        if epoch % self.eval_every == 0 or epoch == 1:
            self.scores[epoch] = self.score(G)
            value = self.scores[epoch][self.monitor]
            if epoch > 0 and value < self.best["value"]:
                self.previous_best = self.best
                self.best = {"epoch": epoch, "value": value, "G": copy.deepcopy(G.state_dict()),
                             "D": copy.deepcopy(D.state_dict())}
        self._tick = time.perf_counter()

    def start_clock(self):
        """Count time from now (train_run calls it before training starts or resumes)."""
        self._tick = time.perf_counter()

    def best_models(self, G, D):
        """Copies of G and D with the best weights."""
        if self.best["epoch"] is None:
            raise RuntimeError("no epoch was scored yet: train at least one epoch")
        G_best, D_best = copy.deepcopy(G), copy.deepcopy(D)
        G_best.load_state_dict(self.best["G"])
        D_best.load_state_dict(self.best["D"])
        return G_best, D_best

    def state_dict(self):
        keys = ("snapshots", "scores", "seconds", "trained_on", "best", "previous_best")
        return {k: getattr(self, k) for k in keys}

    def load_state_dict(self, state, epoch):
        """Restore a saved state, dropping what was recorded after `epoch` (the checkpoint's)."""
        for k, v in state.items():
            setattr(self, k, v)
        self.snapshots = {e: s for e, s in self.snapshots.items() if e <= epoch}
        self.scores = {e: s for e, s in self.scores.items() if e <= epoch}
        if self.best["epoch"] is not None and self.best["epoch"] > epoch:
            self.best = self.previous_best       # found after the checkpoint: it will be found again


def train_run(G, D, data, *, name, settings, watcher, epochs, folder=None, progress=True, **train_kwargs):
    """`train_gan(G, D, data, epochs=epochs, callback=watcher, ...)` checkpointed every epoch to
    `folder/<name>-<settings_key(settings)>.pt` (folder: `checkpoint_dir()`), with the watcher's
    state beside it (`.watch.pt`). A checkpoint with the same settings is resumed, and a finished
    one is only reloaded; other settings never touch it. `settings` must name everything that
    shapes the run (seed, data, models, optimizers, loss, epochs, what the watcher scores).
    A fast=True run (CUDA graphs) gets a key of its own. Returns the history; the watcher holds
    the snapshots, scores, best state and training time."""
    settings = {**settings, "fast": True} if train_kwargs.get("fast") else settings
    path = Path(folder or checkpoint_dir()).expanduser() / f"{name}-{settings_key(settings)}.pt"
    side = path.with_suffix(".watch.pt")
    if path.is_file() and side.is_file():
        done = torch.load(path, map_location="cpu", weights_only=True)["epoch"]
        watcher.load_state_dict(torch.load(side, map_location="cpu", weights_only=True), done)
        print(f"{name}: {done} of {epochs} epochs already trained "
              f"({watcher.seconds / 60:.1f} min on {watcher.trained_on}); checkpoint {path}")
    elif not path.is_file():
        print(f"{name}: a new run; checkpoint every epoch to {path}")
    watcher.trained_on = watcher.trained_on or hardware(next(G.parameters()).device)

    def callback(step, G, D, history):
        watcher(step, G, D, history)
        if step > 0:                             # the checkpoint of this epoch follows at once
            torch.save(watcher.state_dict(), side.with_suffix(".tmp"))
            os.replace(side.with_suffix(".tmp"), side)

    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.with_suffix(".json").is_file():   # the settings, for a person reading the folder
        path.with_suffix(".json").write_text(json.dumps(settings, indent=1, sort_keys=True, default=str))
    watcher.start_clock()
    return train_gan(G, D, data, epochs=epochs, callback=callback, callback_every=len(data),
                     checkpoint_path=path, checkpoint_every=1, resume=True, progress=progress, **train_kwargs)
