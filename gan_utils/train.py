"""The course's one training loop: Algorithm 1 of Goodfellow et al. 2014.

    for each training iteration:
        for k steps:  sample m noise samples z and m examples x;
                      update D by ascending  1/m sum [log D(x) + log(1 - D(G(z)))]
        sample m noise samples z;
                      update G by descending 1/m sum log(1 - D(G(z)))   (or another G loss)

In `train_gan` every real minibatch gives one D step, and every k-th D step is followed by one
G step. A "step" in the history is one G step.
"""
import bisect
import contextlib
import copy
import math
import signal
import threading
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import all_finite, checkpoint_folder, load_checkpoint, save_checkpoint
from .losses import GANLoss, clip_weights, get_losses

HISTORY_KEYS = ("step", "epoch", "loss_d", "loss_g", "d_real", "d_fake")
MAX_LR = 10.0  # far above any GAN learning rate; beyond it float32 updates overflow or explode


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite. The models were put back to their last good state;
    `.history` holds the history up to that state."""

    def __init__(self, history, message):
        super().__init__(message)
        self.history = history


def new_history():
    """Empty training history: a dict of lists of plain numbers, one entry per G step.
    d_real / d_fake: mean D(x) and D(G(z)) (probabilities; raw critic scores for WGAN)."""
    return {k: [] for k in HISTORY_KEYS}


def make_optimizer(model, name="adam", lr=2e-4, **kwargs):
    """Adam (default betas (0.5, 0.999), as in DCGAN), 'rmsprop' (WGAN) or 'sgd' over model's
    parameters."""
    if not (isinstance(lr, (int, float)) and 0 < lr <= MAX_LR):
        raise ValueError(f"the learning rate must be a positive number such as 2e-4, at most {MAX_LR}, got {lr!r}")
    if name == "adam":
        kwargs["betas"] = tuple(float(b) for b in kwargs.get("betas", (0.5, 0.999)))  # (0, 0.9) works too
        return torch.optim.Adam(model.parameters(), lr=lr, **kwargs)
    if name == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=lr, **kwargs)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, **kwargs)
    raise ValueError(f"unknown optimizer {name!r}; use 'adam', 'rmsprop' or 'sgd'")


@torch.no_grad()
def generate(G, z):
    """G's samples for noise z in evaluation mode (BatchNorm uses running statistics), without
    building a graph; G goes back to the mode it was in. z: (N, noise_dim) -> (N, ...)."""
    was_training = G.training
    G.eval()
    out = G(z)
    G.train(was_training)
    return out


BATCH_HELP = ("train_gan wants each batch to be a tensor of images (m, ...), got a {}: a DataLoader of "
              "(images, labels)? Preload the images and pass gan_utils.TensorBatches(images, batch_size), or "
              "drop the labels: data = [x for x, _ in loader] (re-iterable; same order every epoch).")


def d_step(G, D, opt_d, real, noise, loss, clip_value=None):
    """One discriminator update of Algorithm 1: ascend log D(x) + log(1 - D(G(z))), i.e. descend
    loss.d_loss. real: (m, ...) a minibatch of data; noise: n -> (n, noise_dim); loss: a GANLoss.
    Returns the detached (loss_d, real_out, fake_out): a scalar and D's raw outputs (m, 1)."""
    if not torch.is_tensor(real):
        raise TypeError(BATCH_HELP.format(type(real).__name__))
    with torch.no_grad():                         # no gradient flows into G here
        fake = G(noise(len(real)))
    if fake.shape[1:] != real.shape[1:]:
        raise ValueError(f"G makes samples of shape {tuple(fake.shape[1:])} but the data has shape "
                         f"{tuple(real.shape[1:])}: make G's output fit the data")
    loss_d, real_out, fake_out = loss.d_loss(D, real, fake)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    if clip_value is not None:                    # WGAN: keep the critic's weights in [-c, c]
        clip_weights(D, clip_value)
    return loss_d.detach(), real_out.detach(), fake_out.detach()


def g_step(G, D, opt_g, real, noise, loss):
    """One generator update of Algorithm 1: descend loss.g_loss on a fresh fake batch (the
    non-saturating loss ascends log D(G(z))). D's parameters receive gradients but are not
    updated (d_step clears them). real: (m, ...), used by feature matching. Returns loss_g,
    detached."""
    loss_g = loss.g_loss(D, G(noise(len(real))), real)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_g.detach()


def _copy_state(*objects):
    return [copy.deepcopy(o.state_dict()) for o in objects]


@contextlib.contextmanager
def _interrupts_deferred():
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


def _check_every(**settings):
    for name, value in settings.items():
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be an int >= 1 (how often, in steps or epochs), got {value!r}")


def train_gan(G, D, data, *, noise, epochs, opt_g, opt_d, loss="nonsaturating", k=1,
              real_label=1.0, clip_value=None, callback=None, callback_every=100, log_every=25,
              checkpoint_path=None, checkpoint_every=1, resume=False, progress=True,
              tensorboard_dir=None, history=None):
    """Train G and D with Algorithm 1 and return the history (see `new_history`).

    data: re-iterable of real minibatches, one pass per epoch (TensorBatches, ToyBatches);
    noise: function n -> (n, noise_dim); loss: a name of `losses.get_losses` or a `GANLoss`; k: D steps per G step; real_label: 0.9 for one-sided label smoothing;
    clip_value: clip D's weights to [-c, c] after each D step (WGAN).
    callback(step, G, D, history) runs before training and every `callback_every` G steps.
    Every `log_every` G steps the losses are copied to the history (one host sync) and checked:
    NaN or inf raises TrainingDiverged after restoring the last good state (the end of an epoch
    whose weights were checked finite).
    With checkpoint_path, a checkpoint is saved every `checkpoint_every` epochs and at the end;
    resume=True continues from it if it exists. Passing the `history` of an earlier call continues
    it (a second phase of training); step numbers and epoch labels go on from its last row. Ctrl-C
    (interrupt) stops cleanly and keeps everything trained so far.
    """
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k (discriminator steps per generator step) must be an int >= 1, got {k!r}")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    _check_every(callback_every=callback_every, log_every=log_every, checkpoint_every=checkpoint_every)
    if len(data) < k:
        raise ValueError(f"an epoch has {len(data)} batches, fewer than k={k}: use more data or a smaller k")
    loss = get_losses(loss, real_label) if isinstance(loss, str) else loss
    if not isinstance(loss, GANLoss):
        raise TypeError(f"loss must be a loss name such as 'nonsaturating' or a gan_utils.GANLoss, got {loss!r}")
    if checkpoint_path:
        checkpoint_path = Path(checkpoint_path).expanduser()
        checkpoint_folder(checkpoint_path)          # a read-only folder fails now, not after an epoch
    to_prob = (lambda s: s) if loss.critic else torch.sigmoid
    history = history if history is not None else new_history()
    step = history["step"][-1] if history["step"] else 0      # a second phase continues
    start_epoch = history["epoch"][-1] + 1 if history["epoch"] else 0
    end_epoch = start_epoch + epochs
    if resume and checkpoint_path and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path, G, D, opt_g, opt_d)
        step, start_epoch, history = state["step"], state["epoch"], state["history"]
        print(f"Resumed from {checkpoint_path}: epoch {start_epoch}, step {step}")
    if not all_finite(G, D, opt_g, opt_d):
        raise ValueError("G, D or an optimizer holds NaN or infinite values before training: rebuild them")
    writer = None
    if tensorboard_dir:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(tensorboard_dir)

    start_step = step
    pending = []                                 # per-step values still on the device
    good = (step, _copy_state(G, D, opt_g, opt_d))  # the last state known to be finite
    epoch = start_epoch

    def diverged(where):
        good_step, states = good
        for obj, st in zip((G, D, opt_g, opt_d), states):
            obj.load_state_dict(st)
        del_from = bisect.bisect_right(history["step"], good_step)
        for key in HISTORY_KEYS:                 # forget the rows after the restored step
            del history[key][del_from:]
        return TrainingDiverged(history,
            f"{where} became NaN or infinite between G steps {good_step} and {step} (epoch {epoch}). "
            f"G, D and the optimizers were restored to step {good_step}; the last checkpoint "
            f"file is untouched. Lower the learning rate, or check the data for NaN.")

    def flush():
        with _interrupts_deferred():
            if not pending:
                return
            values = torch.stack(pending).cpu()      # the only host synchronization
            if not torch.isfinite(values).all():
                pending.clear()
                raise diverged("a loss")
            first = (history["step"][-1] if history["step"] else start_step) + 1
            for i, row in enumerate(values.tolist()):
                for key, value in zip(HISTORY_KEYS, [first + i, epoch, *row]):
                    history[key].append(value)
                if writer:
                    for key, value in zip(HISTORY_KEYS[2:], row):
                        writer.add_scalar(key, value, first + i)
            pending.clear()
            bar.set_postfix(loss_d=f"{row[0]:.3f}", loss_g=f"{row[1]:.3f}",
                            D_x=f"{row[2]:.2f}", D_G_z=f"{row[3]:.2f}", refresh=False)

    steps_per_epoch = len(data) // k
    bar = tqdm(total=(end_epoch - start_epoch) * steps_per_epoch, disable=not progress, unit="step")
    try:
        if callback is not None and step == 0:
            callback(0, G, D, history)
        for epoch in range(start_epoch, end_epoch):
            for i, real in enumerate(data):
                # (1) Discriminator step, on every minibatch.
                loss_d, real_out, fake_out = d_step(G, D, opt_d, real, noise, loss, clip_value)
                if (i + 1) % k != 0:
                    continue
                # (2) Generator step, after every k discriminator steps.
                loss_g = g_step(G, D, opt_g, real, noise, loss)
                pending.append(torch.stack([loss_d, loss_g, to_prob(real_out).mean(), to_prob(fake_out).mean()]))
                step += 1
                bar.update()
                if step % log_every == 0:
                    flush()
                if callback is not None and step % callback_every == 0:
                    flush()
                    callback(step, G, D, history)
            flush()
            if not all_finite(G, D, opt_g, opt_d):        # one check an epoch: cheap
                raise diverged("a weight")
            if epoch + 1 < end_epoch:                     # one copy an epoch: cheap
                good = (step, _copy_state(G, D, opt_g, opt_d))
            if checkpoint_path and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == end_epoch):
                save_checkpoint(checkpoint_path, G, D, opt_g, opt_d, step, epoch + 1, history)
    except KeyboardInterrupt:
        flush()
        step = history["step"][-1] if history["step"] else step
        print(f"Interrupted at step {step}: G and D keep what they learned; the history is returned.")
    finally:
        bar.close()
        if writer:
            writer.close()
    return history
