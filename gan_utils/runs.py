"""Long runs that survive a restart: `train_run` checkpoints to a file named by a hash of the run's settings (same
settings resume or reload, other settings start a new file), with its `Watcher`'s state saved beside it."""
import hashlib
import json
import os
from pathlib import Path

import torch

from .checkpoints import Checkpoint
from .fast import fast_steps
from .mnist import CHECKOUT_DIR, user_cache_dir
from .models import MLPDiscriminator, MLPGenerator
from .notebook import hardware
from .steps import eager_steps, make_optimizer
from .train import train_gan
from .utils import seed_everything

CHECKPOINT_DIR_VARIABLE = "GAN_CHECKPOINT_DIR"


def mlp_gan(noise_dim=64, lr=2e-4, betas=(0.5, 0.999), seed=0, device="cpu"):
    """(G, D, opt_g, opt_d), seeded: the course's MLP GAN (notebook 03), Adam for both players."""
    seed_everything(seed)
    G = MLPGenerator(noise_dim=noise_dim).to(device)
    D = MLPDiscriminator().to(device)
    return G, D, make_optimizer(G, lr=lr, betas=betas), make_optimizer(D, lr=lr, betas=betas)


def settings_key(settings):
    """A 12-character hash of a dict of settings (JSON-serialisable values): same settings, same key."""
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict such as {{'lr': 2e-4, 'epochs': 250}}, got {type(settings).__name__}")
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def checkpoint_dir():
    """$GAN_CHECKPOINT_DIR, else the checkout's checkpoints/, else `user_cache_dir()/checkpoints`."""
    if os.environ.get(CHECKPOINT_DIR_VARIABLE):
        return Path(os.environ[CHECKPOINT_DIR_VARIABLE]).expanduser()
    if (CHECKOUT_DIR / "pyproject.toml").is_file():
        return CHECKOUT_DIR / "checkpoints"
    return user_cache_dir() / "checkpoints"


def train_run(G, D, data, *, name, settings, watcher, epochs, folder=None, progress=True, fast=False, **train_kwargs):
    """`train_gan(G, D, data, epochs=epochs, callback=watcher, ...)` checkpointed every epoch to
    `<folder or checkpoint_dir()>/<name>-<settings_key(settings)>.pt`, the watcher's state in `.watch.pt`: resumed
    (or only reloaded when finished) with the same settings, which must name all that shapes the run.
    fast=True: `fast.fast_steps`, a key of its own. Returns the history."""
    if watcher.steps_per_epoch != len(data):
        raise ValueError(f"the watcher counts {watcher.steps_per_epoch} steps per epoch but the data has "
                         f"{len(data)} batches: build it with Watcher(..., steps_per_epoch=len(data))")
    settings = {**settings, "fast": True} if fast else settings
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
    callback.every = len(data)
    return train_gan(G, D, data, epochs=epochs, callback=callback,
                     checkpoint=Checkpoint(path), progress=progress, steps=fast_steps if fast else eager_steps,
                     **train_kwargs)
