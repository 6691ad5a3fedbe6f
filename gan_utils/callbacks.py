"""What `train_gan` does besides the two steps: Recorder (the history, synced to the host in `flush`), NaNGuard
(restores the last finite state), and the callbacks SnapshotCollector (samples for plots) and Watcher (long runs)."""
import bisect
import contextlib
import copy
import signal
import threading
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .steps import generate
from .utils import _check_int

HISTORY_KEYS = ("step", "epoch", "loss_d", "loss_g", "d_real", "d_fake")


def new_history():
    """Empty history: lists of numbers, one entry per G step; d_real / d_fake: mean D(x), D(G(z)) (WGAN: raw)."""
    return {k: [] for k in HISTORY_KEYS}


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the models were restored to their last good state, `.history` up to it."""

    def __init__(self, history, message):
        super().__init__(message)
        self.history = history


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `train_gan`: G, D and the optimizers keep what they learned, `.history` every finished G step."""

    def __init__(self, history):
        step = history["step"][-1] if history["step"] else 0
        super().__init__(f"training interrupted at G step {step}: G and D keep what they learned, but the run "
                         f"is not finished (run it again to resume from its last checkpoint, if it has one)")
        self.history = history


class NonFinite(Exception):
    """`what` (a loss, a weight) is NaN or inf; NaNGuard.restore turns it into TrainingDiverged."""

    def __init__(self, what, step, epoch):
        super().__init__(what)
        self.what, self.step, self.epoch = what, step, epoch


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C (SIGINT) inside the block is raised at its end (main thread only), so bookkeeping is never cut."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *args: caught.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:                                   # not when the block raised an error of its own
        raise KeyboardInterrupt


@dataclass
class Progress:
    """train_gan's reporting: a progress `bar`, the history synced (and NaN-checked) every `every` G steps,
    TensorBoard scalars in `tensorboard_dir`. progress=True is Progress(), False is Progress(bar=False)."""
    bar: bool = True
    every: int = 25
    tensorboard_dir: Optional[str] = None


class Recorder:
    """Extends `history` in place, with a bar of `total` G steps. progress: a bool or a `Progress`."""

    def __init__(self, history, critic, total=None, progress=True, step=None):
        options = progress if isinstance(progress, Progress) else Progress(bar=bool(progress))
        _check_int("Progress.every", options.every, 1, " (G steps)")
        self.rows, self.pending, self.every = history, [], options.every   # pending: (4,) tensors on the device
        self.step = step if step is not None else (history["step"][-1] if history["step"] else 0)
        self.first_step, self.epoch = self.step, 0
        self.to_prob = (lambda s: s) if critic else torch.sigmoid
        self.bar = tqdm(total=total, disable=not options.bar, unit="step")
        self.writer = None
        if options.tensorboard_dir:
            from torch.utils.tensorboard import SummaryWriter   # optional dependency
            self.writer = SummaryWriter(options.tensorboard_dir)

    def add(self, loss_d, loss_g, real_out, fake_out):
        """One G step's values, kept on the device: no host synchronization."""
        self.pending.append(torch.stack([loss_d, loss_g, self.to_prob(real_out).mean(), self.to_prob(fake_out).mean()]))
        self.step += 1
        self.bar.update()
        if len(self.pending) >= self.every:
            self.flush()

    def flush(self):
        """Move the pending values into the history (one host sync); NonFinite, keeping none, on NaN or inf."""
        with interrupts_deferred():
            if not self.pending:
                return
            values = torch.stack(self.pending).cpu()
            if not torch.isfinite(values).all():
                self.pending.clear()
                raise NonFinite("a loss", self.step, self.epoch)
            first = (self.rows["step"][-1] if self.rows["step"] else self.first_step) + 1
            for i, row in enumerate(values.tolist()):
                for key, value in zip(HISTORY_KEYS, [first + i, self.epoch, *row]):
                    self.rows[key].append(value)
                if self.writer:
                    for key, value in zip(HISTORY_KEYS[2:], row):
                        self.writer.add_scalar(key, value, first + i)
            self.pending.clear()
            self.bar.set_postfix(loss_d=f"{row[0]:.3f}", loss_g=f"{row[1]:.3f}",
                                 D_x=f"{row[2]:.2f}", D_G_z=f"{row[3]:.2f}", refresh=False)

    def close(self):
        self.bar.close()
        if self.writer:
            self.writer.close()


def all_finite(*objects):
    """True when every float parameter, buffer and optimizer-state tensor of the objects is finite."""
    tensors = []
    for o in objects:
        if isinstance(o, torch.optim.Optimizer):
            tensors += [t for s in o.state.values() for t in s.values() if torch.is_tensor(t)]
        else:
            tensors += list(o.parameters()) + list(o.buffers())
    checks = {}                                  # per device, so one host sync per device
    for t in tensors:
        if t.is_floating_point():
            checks.setdefault(t.device, []).append(torch.isfinite(t).all())
    return all(bool(torch.stack(c).all()) for c in checks.values())


class NaNGuard:
    """Keeps a copy of the last finite state of (G, D, opt_g, opt_d): at the start and at each epoch's end."""

    def __init__(self, *objects, step=0):
        if not all_finite(*objects):
            raise ValueError("G, D or an optimizer holds NaN or infinite values before training: rebuild them")
        self.objects, self.good = objects, (step, [copy.deepcopy(o.state_dict()) for o in objects])

    def _copy(self):
        return [copy.deepcopy(o.state_dict()) for o in self.objects]

    def epoch_end(self, step, epoch, last=False):
        """Check every weight; keep a copy of this state as the good one (not after the last epoch)."""
        if not all_finite(*self.objects):
            raise NonFinite("a weight", step, epoch)
        if not last:
            self.good = (step, self._copy())

    def restore(self, history, err):
        """Restore the good state, drop the history's rows after it; return TrainingDiverged."""
        good_step, states = self.good
        for obj, state in zip(self.objects, states):   # captured CUDA-graph steps must be rebuilt afterwards
            obj.load_state_dict(state)
        del_from = bisect.bisect_right(history["step"], good_step)
        for key in HISTORY_KEYS:
            del history[key][del_from:]
        return TrainingDiverged(history, f"{err.what} became NaN or infinite between G steps {good_step} and "
                                f"{err.step} (epoch {err.epoch}). G, D and the optimizers were restored to step "
                                f"{good_step}; the last checkpoint file is untouched. Lower the learning rate, or "
                                f"check the data for NaN.")


class SnapshotCollector:
    """A `train_gan` callback, called every `every` G steps (None: every epoch), storing a frame {'step', 'fake': G(z)
    on the CPU (z: (n, noise_dim)), 'D': a frozen CPU copy of D, **metrics(fake) (a dict of floats)}."""

    def __init__(self, z, metrics=None, every=None):
        self.z, self.metrics, self.every, self.frames = z, metrics, every, []

    @torch.no_grad()
    def __call__(self, step, G, D, history):
        fake = generate(G, self.z.to(next(G.parameters()).device)).cpu()
        frame = {"step": step, "fake": fake, "D": copy.deepcopy(D).cpu().eval().requires_grad_(False)}
        if self.metrics is not None:
            frame.update(self.metrics(fake))
        self.frames.append(frame)

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        return self.frames[i]

    def values(self, key):
        """One value per frame, e.g. ``snaps.values('w1')``; `values('step')` gives the steps."""
        return [f[key] for f in self.frames]

    def pick(self, n):
        """About n frames evenly spread over training, first and last included (for animations)."""
        idx = np.unique(np.linspace(0, len(self.frames) - 1, min(n, len(self.frames))).round().astype(int))
        return [self.frames[i] for i in idx]


class Watcher:
    """A once-per-epoch train_gan callback: `snapshots[epoch]` = G(z_fixed, y_fixed) as uint8 (N, C, H, W);
    `scores[epoch]` = score(G), a dict with 'frechet', every `eval_every` epochs and at epoch 1; `best`: the
    epoch > 0 with the lowest 'frechet' and its G and D state_dicts; `seconds`: wall time across restarts."""

    monitor = "frechet"

    def __init__(self, z_fixed, score, steps_per_epoch, eval_every=1, y_fixed=None):
        for name, value in (("steps_per_epoch", steps_per_epoch), ("eval_every", eval_every)):
            _check_int(f"Watcher: {name}", value)
        self.z_fixed, self.score, self.steps_per_epoch, self.y_fixed = z_fixed, score, steps_per_epoch, y_fixed
        self.eval_every = eval_every
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
            self.scores[epoch] = scores = self.score(G)
            if not (isinstance(scores, dict) and self.monitor in scores):
                raise KeyError(f"Watcher: score(G) must return a dict with a {self.monitor!r} entry (the value "
                               f"early stopping minimizes), got {scores!r}")
            value = scores[self.monitor]
            if epoch > 0 and value < self.best["value"]:   # a NaN score never becomes the best
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
            scored = [e for e in self.scores if e > 0]
            if scored:
                raise RuntimeError(f"every score of epochs {scored[:5]} is NaN or infinite: no best G to pick "
                                   f"(did training diverge?)")
            raise RuntimeError("no epoch was scored yet: train at least one epoch")
        G_best, D_best = copy.deepcopy(G), copy.deepcopy(D)
        G_best.load_state_dict(self.best["G"])
        D_best.load_state_dict(self.best["D"])
        return G_best, D_best

    def state_dict(self):
        return {k: getattr(self, k) for k in ("snapshots", "scores", "seconds", "trained_on", "best", "previous_best")}

    def load_state_dict(self, state, epoch):
        """Restore a saved state, dropping what was recorded after `epoch` (the checkpoint's)."""
        for k, v in state.items():
            setattr(self, k, v)
        self.snapshots = {e: s for e, s in self.snapshots.items() if e <= epoch}
        self.scores = {e: s for e, s in self.scores.items() if e <= epoch}
        if self.best["epoch"] is not None and self.best["epoch"] > epoch:
            self.best = self.previous_best       # found after the checkpoint: it will be found again
