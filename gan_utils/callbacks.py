"""What `train_gan` does besides Algorithm 1's two steps, in small objects it calls at fixed moments:

    Recorder     the history: each G step's values stay on the device until `flush` (one host
                 sync), which moves them into the history, the progress bar and TensorBoard;
    NaNGuard     the divergence guard: a copy of the last state checked to be finite, restored
                 when a loss or a weight becomes NaN or infinite;
    Checkpointer checkpoints every few epochs (and resume), to a folder checked before training.
"""
import bisect
import contextlib
import copy
import signal
import threading
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import all_finite, checkpoint_folder, load_checkpoint, save_checkpoint

HISTORY_KEYS = ("step", "epoch", "loss_d", "loss_g", "d_real", "d_fake")


def new_history():
    """Empty training history: a dict of lists of plain numbers, one entry per G step.
    d_real / d_fake: mean D(x) and D(G(z)) (probabilities; raw critic scores for WGAN)."""
    return {k: [] for k in HISTORY_KEYS}


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite. The models were put back to their last good state;
    `.history` holds the history up to that state."""

    def __init__(self, history, message):
        super().__init__(message)
        self.history = history


class NonFinite(Exception):
    """Raised inside the loop when `what` (a loss, a weight) is NaN or inf; NaNGuard.restore
    turns it into TrainingDiverged."""

    def __init__(self, what, step, epoch):
        super().__init__(what)
        self.what, self.step, self.epoch = what, step, epoch


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C (SIGINT) that arrives inside the block is raised at its end, so bookkeeping such as
    moving rows into the history is never cut in half. Only in the main thread."""
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


class Recorder:
    """The history of a run (see `new_history`), extended in place, with a progress bar of
    `total` G steps and, with `tensorboard_dir`, TensorBoard scalars. `step` counts G steps
    (it goes on from the history's last row); `epoch` labels the rows being added."""

    def __init__(self, history, critic, total=None, progress=True, tensorboard_dir=None, step=None):
        self.rows, self.pending = history, []    # pending: (4,) tensors still on the device
        self.step = step if step is not None else (history["step"][-1] if history["step"] else 0)
        self.first_step, self.epoch = self.step, 0
        self.to_prob = (lambda s: s) if critic else torch.sigmoid
        self.bar = tqdm(total=total, disable=not progress, unit="step")
        self.writer = None
        if tensorboard_dir:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(tensorboard_dir)

    def add(self, loss_d, loss_g, real_out, fake_out):
        """One G step's values, kept on the device: no host synchronization."""
        self.pending.append(torch.stack([loss_d, loss_g, self.to_prob(real_out).mean(),
                                         self.to_prob(fake_out).mean()]))
        self.step += 1
        self.bar.update()

    def flush(self):
        """Move the pending values into the history (one host sync). Raises NonFinite, keeping
        none of them, when one is NaN or inf. Ctrl-C waits until the rows are all in."""
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


def restore_state(objects, states):
    """Put models and optimizers back to `states` (their state_dicts). The one place a run is
    restored. load_state_dict replaces the optimizers' state tensors: step functions that captured
    them (train_gan(fast=True), CUDA graphs) must be built again afterwards; train_gan stops after
    a restore, so it never reuses them."""
    for obj, state in zip(objects, states):
        obj.load_state_dict(state)


class NaNGuard:
    """Keeps a copy of the last state of (G, D, opt_g, opt_d) that was checked to be finite: at
    the start and at each epoch's end (one on-device check and one copy an epoch)."""

    def __init__(self, *objects, step=0):
        if not all_finite(*objects):
            raise ValueError("G, D or an optimizer holds NaN or infinite values before training: rebuild them")
        self.objects = objects
        self.good = (step, self._copy())

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
        restore_state(self.objects, states)
        del_from = bisect.bisect_right(history["step"], good_step)
        for key in HISTORY_KEYS:
            del history[key][del_from:]
        return TrainingDiverged(history,
            f"{err.what} became NaN or infinite between G steps {good_step} and {err.step} (epoch {err.epoch}). "
            f"G, D and the optimizers were restored to step {good_step}; the last checkpoint "
            f"file is untouched. Lower the learning rate, or check the data for NaN.")


class Checkpointer:
    """Saves (G, D, opt_g, opt_d) to `path` every `every` epochs and after the last one; does
    nothing when path is None. The folder is created and checked to be writable at once."""

    def __init__(self, path, every, *objects):
        self.path, self.every, self.objects = path and Path(path).expanduser(), every, objects
        if self.path:
            checkpoint_folder(self.path)

    def resume(self):
        """Load the checkpoint if there is one: {'step', 'epoch', 'history'} or None."""
        if not (self.path and self.path.is_file()):
            return None
        state = load_checkpoint(self.path, *self.objects)
        print(f"Resumed from {self.path}: epoch {state['epoch']}, step {state['step']}")
        return state

    def epoch_end(self, step, epochs_done, last, history):
        if self.path and (epochs_done % self.every == 0 or last):
            save_checkpoint(self.path, *self.objects, step, epochs_done, history)
