"""Long runs that survive a restart: `train_run` checkpoints to a file named by a hash of the run's settings (same
settings resume or reload, other settings start a new file), with its `Watcher`'s state saved beside it."""
import contextlib
import hashlib
import json
import math
import numbers
import os
from pathlib import Path

import torch

from .checkpoints import (Checkpoint, CheckpointError, _alive, checksum, load_checkpoint, load_file, read_checkpoint,
                          save_atomic, save_checkpoint)
from .callbacks import new_history
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
    G, D = MLPGenerator(noise_dim=noise_dim).to(device), MLPDiscriminator().to(device)
    return G, D, make_optimizer(G, lr=lr, betas=betas), make_optimizer(D, lr=lr, betas=betas)


def settings_key(settings):
    """A 12-character hash of a dict of settings (JSON values: str, number, bool, None, lists, dicts with str keys;
    1.0 counts as 1): same settings, same key. Anything else (a tensor, a function, a loss object) is refused."""
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict such as {{'lr': 2e-4, 'epochs': 250}}, got {type(settings).__name__}")
    text = json.dumps(_plain(settings, "settings"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _plain(value, where):
    """`value` as JSON data, integral floats as ints; TypeError/ValueError naming `where` otherwise."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(f"settings_key: {where} is {value!r}; settings must be finite numbers")
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"settings_key: {where} is a {type(value).__name__} ({str(value)[:60]!r}), not JSON data "
                    f"(a str, number, bool, None, list or dict with str keys): describe it by a name or numbers, "
                    f"e.g. 'loss': 'r1, gamma 10' rather than the loss object")


def checkpoint_dir():
    """$GAN_CHECKPOINT_DIR, else the checkout's checkpoints/, else `user_cache_dir()/checkpoints`."""
    if os.environ.get(CHECKPOINT_DIR_VARIABLE):
        return Path(os.environ[CHECKPOINT_DIR_VARIABLE]).expanduser()
    if (CHECKOUT_DIR / "pyproject.toml").is_file():
        return CHECKOUT_DIR / "checkpoints"
    return user_cache_dir() / "checkpoints"


WATCHER_KEYS = {"snapshots", "scores", "seconds", "trained_on", "best", "previous_best"}


def train_run(G, D, data, *, name, settings, watcher, epochs, folder=None, progress=True, fast=False, **train_kwargs):
    """`train_gan(G, D, data, epochs=epochs, callback=watcher, ...)` checkpointed every epoch (and before the first)
    to `<folder or checkpoint_dir()>/<name>-<settings_key(settings)>.pt`, the watcher's state in `.watch.pt`: resumed
    (or only reloaded when finished, also from a read-only folder) with the same settings, which must name all that
    shapes the run; one process at a time (a `.lock` file). fast=True: `fast.fast_steps`, a key of its own.
    Returns the history; Ctrl-C raises TrainingInterrupted, and calling train_run again continues the run."""
    if watcher.steps_per_epoch != len(data):
        raise ValueError(f"the watcher counts {watcher.steps_per_epoch} steps per epoch but the data has "
                         f"{len(data)} batches: build it with Watcher(..., steps_per_epoch=len(data))")
    settings = {**settings, "fast": True} if fast else settings
    key = settings_key(settings)
    path = Path(folder or checkpoint_dir()).expanduser() / f"{name}-{key}.pt"
    side = path.with_suffix(".watch.pt")
    if path.is_file():
        done = read_checkpoint(path)["epoch"]
        watcher.load_state_dict(_load_side(side, path, key), done)
        print(f"{name}: {done} of {epochs} epochs already trained "
              f"({watcher.seconds / 60:.1f} min on {watcher.trained_on}); checkpoint {path}")
        if done >= epochs:                       # finished: reload only, writing nothing
            return load_checkpoint(path, G, D, train_kwargs.get("opt_g"), train_kwargs.get("opt_d"))["history"]
    else:
        print(f"{name}: a new run; checkpoint every epoch to {path}")
    watcher.trained_on = watcher.trained_on or hardware(next(G.parameters()).device)
    def callback(step, G, D, history):
        watcher(step, G, D, history)
        if step > 0:                             # the checkpoint of this epoch follows at once
            _save_side(side, key, watcher)
    with _locked(path):
        if not path.is_file():                   # epoch 0: a rerun after a Ctrl-C in epoch 1 starts from here
            save_checkpoint(path, G, D, train_kwargs["opt_g"], train_kwargs["opt_d"], 0, 0, new_history())
            _save_side(side, key, watcher)
            save_atomic(path.with_suffix(".json"),   # the settings, for a person reading the folder
                        lambda f: f.write(json.dumps(_plain(settings, ""), indent=1, sort_keys=True).encode()))
        watcher.start_clock()
        callback.every = len(data)
        return train_gan(G, D, data, epochs=epochs, callback=callback, checkpoint=Checkpoint(path), progress=progress,
                         steps=fast_steps if fast else eager_steps, **train_kwargs)


def _save_side(side, key, watcher):
    state = {"key": key, "watcher": watcher.state_dict()}
    state["checksum"] = checksum(state)
    save_atomic(side, lambda f: torch.save(state, f))


def _load_side(side, path, key):
    """The watcher state saved beside the checkpoint `path`, checked: its checksum, its run's key, plain data."""
    retrain = f"delete {path} and {side.name} to train the run again"
    if not side.is_file():
        raise CheckpointError(f"{side} is missing beside its checkpoint {path}: the run's scores, snapshots and best "
                              f"G are lost. Put the file back, or {retrain}")
    state = load_file(side, "watcher file")
    if isinstance(state, dict) and set(state) == WATCHER_KEYS:  # written before checksums: trusted once, with a word
        print(f"Notice: {side} was written by an older gan_utils (no checksum, no run key); it is rewritten "
              f"with them at the next save")
        state = {"key": key, "watcher": state, "checksum": checksum({"key": key, "watcher": state})}
    saved = state.pop("checksum", None) if isinstance(state, dict) else None
    if saved is None or set(state) != {"key", "watcher"} or checksum(state) != saved:
        raise CheckpointError(f"{side} is damaged or not a gan_utils watcher file (no valid checksum): {retrain}")
    if state["key"] != key:
        raise CheckpointError(f"{side} belongs to the run with key {state['key']}, not {key} (copied from another "
                              f"run?): put this run's file back, or {retrain}")
    watched = state["watcher"]
    if not (isinstance(watched, dict) and set(watched) == WATCHER_KEYS
            and all(isinstance(watched[k], dict) for k in ("snapshots", "scores", "best", "previous_best"))):
        raise CheckpointError(f"{side} holds other entries than a Watcher's {sorted(WATCHER_KEYS)}: {retrain}")
    return watched


@contextlib.contextmanager
def _locked(path):
    """Hold `<path>.lock` (this process's id) while training; a lock of a process that no longer runs is taken over."""
    lock = path.with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            text = lock.read_text().strip() if lock.is_file() else ""
            pid = int(text) if text.isdigit() else 0
            if pid and pid != os.getpid() and _alive(pid):
                raise RuntimeError(f"the run {path.name} is being trained by process {pid} (lock file {lock}): wait "
                                   f"for it to finish or stop it; delete the lock only if no process trains this "
                                   f"run") from None
            lock.unlink(missing_ok=True)         # a stale lock: taken over
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
