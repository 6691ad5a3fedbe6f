"""The course's training loop, Algorithm 1 (see `steps`): a D step per minibatch, a G step after every k-th."""
import torch

from .callbacks import NaNGuard, NonFinite, Recorder, TrainingInterrupted, interrupts_deferred, new_history
from .losses import GANLoss, get_loss
from .steps import eager_steps, k_schedule
from .utils import _check_int


def train_gan(G, D, data, *, noise, epochs, opt_g, opt_d, loss="nonsaturating", k=1, callback=None,
              checkpoint=None, progress=True, steps=eager_steps):
    """Train G and D with Algorithm 1 and return the history (`callbacks.new_history`).

    data: re-iterable of minibatches (m, ...), one pass per epoch, or of (images, labels) pairs for a
        conditional G; noise: n -> (n, noise_dim); loss: a `get_loss` name or a `GANLoss`;
    k: D steps per G step, an int or a function of the number of G steps done;
    callback(step, G, D, history): at step 0 and every `callback.every` G steps (an attribute, e.g.
        SnapshotCollector(z, every=50)); without one, after every epoch;
    checkpoint: a `checkpoints.Checkpoint`; progress: a bool or a `callbacks.Progress`;
    steps: `steps.eager_steps`, or `fast.fast_steps` (CUDA graphs).
    NaN or inf raises TrainingDiverged (the last good state restored); Ctrl-C raises TrainingInterrupted."""
    every = getattr(callback, "every", None)
    loss, k_at = _checked(data, epochs, loss, k, every)
    G.train(), D.train()                          # an earlier error may have left them in eval mode
    with torch.enable_grad():                     # also after a Ctrl-C that left grad mode off
        state = checkpoint.start(G, D, opt_g, opt_d) if checkpoint is not None else None
        history, start_epoch = (state["history"], state["epoch"]) if state else (new_history(), 0)
        total = (epochs - start_epoch) * (len(data) // k) if isinstance(k, int) else None
        log = Recorder(history, loss.critic, total, progress, state and state["step"])
        guard = NaNGuard(G, D, opt_g, opt_d, step=log.step)
        d_fn, g_fn = steps(G, D, opt_g, opt_d, noise, loss, None if steps is eager_steps else _example(data))
        try:
            if callback is not None and log.step == 0:
                callback(0, G, D, history)
            for epoch in range(start_epoch, epochs):
                log.epoch, d_steps = epoch, 0
                for batch in data:
                    real, G_b, D_b = with_labels(batch, G, D)
                    loss_d, real_out, fake_out = d_fn(real, G_b, D_b)      # (1) D step, every minibatch
                    d_steps += 1
                    if d_steps < k_at(log.step):
                        continue
                    d_steps = 0
                    with interrupts_deferred():                        # a G step and its row go together
                        log.add(loss_d, g_fn(real, G_b, D_b), real_out, fake_out)   # (2) G step
                    if callback is not None and every and log.step % every == 0:
                        log.flush()
                        callback(log.step, G, D, history)
                log.flush()
                guard.epoch_end(log.step, epoch, last=epoch + 1 == epochs)  # finite: a good state
                if checkpoint is not None:
                    checkpoint.epoch_end(log.step, epoch + 1, epoch + 1 == epochs, history)
                if callback is not None and not every:
                    callback(log.step, G, D, history)
        except KeyboardInterrupt:
            try:
                log.flush()
            except NonFinite as err:
                raise guard.restore(history, err) from None
            raise TrainingInterrupted(history) from None
        except NonFinite as err:
            raise guard.restore(history, err) from None
        finally:
            log.close()
    return history


def _checked(data, epochs, loss, k, every):
    """train_gan's arguments checked: (the GANLoss, k as a function of the G step)."""
    _check_int("epochs", epochs)
    if every is not None:
        _check_int("callback.every", every, 1, " (G steps) or None (every epoch)")
    loss = get_loss(loss) if isinstance(loss, str) else loss
    if not isinstance(loss, GANLoss):
        raise TypeError(f"loss must be a loss name such as 'nonsaturating' or a gan_utils.GANLoss, got {loss!r}")
    return loss, k_schedule(k, len(data))


def _example(data):
    """One batch of data, read with torch's RNGs put back (fixes a captured step's shapes)."""
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_initialized() else []):
        return next(iter(data))


BATCH_HELP = ("train_gan wants each batch to be a tensor of images (m, ...), or an (images, labels) pair of "
              "tensors for a conditional GAN, got a {}: preload the images and pass "
              "gan_utils.TensorBatches(images, batch_size) (labels=labels for a conditional GAN), or drop "
              "the labels: data = [x for x, _ in loader] (re-iterable; same order every epoch).")


class WithLabels:
    """A conditional model with one minibatch's labels bound: WithLabels(D, y)(x) = D(x, y), also for features."""

    def __init__(self, model, y):
        self.model, self.y = model, y

    def __call__(self, x):
        return self.model(x, self.y)

    def features(self, x):
        return self.model.features(x, self.y)

    def __getattr__(self, name):
        return getattr(self.model, name)


def with_labels(batch, G, D):
    """(real, G, D) for one batch: a tensor as it is; an (images, labels) pair for a conditional G gives the images
    and G, D with the labels bound; anything else raises a TypeError that says what to pass."""
    if torch.is_tensor(batch):
        return batch, G, D
    pair = isinstance(batch, (tuple, list)) and len(batch) == 2 and all(torch.is_tensor(t) for t in batch)
    if pair and getattr(G, "n_classes", 0):
        x, y = batch
        return x, WithLabels(G, y), WithLabels(D, y)
    kind = f"{type(batch).__name__} (images, labels) for a G without labels (n_classes=0)" if pair \
        else type(batch).__name__
    raise TypeError(BATCH_HELP.format(kind))
