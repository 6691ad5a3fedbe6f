"""The course's one training loop: Algorithm 1 of Goodfellow et al. 2014.

    for each training iteration:
        for k steps:  sample m noise samples z and m examples x;
                      update D by ascending  1/m sum [log D(x) + log(1 - D(G(z)))]
        sample m noise samples z;
                      update G by descending 1/m sum log(1 - D(G(z)))   (or another G loss)

In `train_gan` every real minibatch gives one D step, and every k-th D step is followed by one
G step. A "step" in the history is one G step.
"""
import torch

from .callbacks import (HISTORY_KEYS, interrupts_deferred, Checkpointer, NaNGuard, NonFinite, Recorder, TrainingDiverged,
                        new_history)
from .losses import GANLoss, clip_weights, get_losses

MAX_LR = 10.0  # far above any GAN learning rate; beyond it float32 updates overflow or explode


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
def generate(G, z, y=None):
    """G's samples for noise z in evaluation mode (BatchNorm uses running statistics), without
    building a graph; G goes back to the mode it was in. z: (N, noise_dim) -> (N, ...);
    y: (N,) int64 labels for a conditional G (G(z, y)), None otherwise."""
    was_training = G.training
    G.eval()
    out = G(z) if y is None else G(z, y)
    G.train(was_training)
    return out


BATCH_HELP = ("train_gan wants each batch to be a tensor of images (m, ...), or an (images, labels) pair of "
              "tensors for a conditional GAN, got a {}: preload the images and pass "
              "gan_utils.TensorBatches(images, batch_size) (labels=labels for a conditional GAN), or drop "
              "the labels: data = [x for x, _ in loader] (re-iterable; same order every epoch).")


class WithLabels:
    """A conditional model with the labels of one minibatch bound: WithLabels(D, y)(x) = D(x, y).
    The losses call D(x) (and D.features(x), read through) as for an unconditional GAN."""

    def __init__(self, model, y):
        self.model, self.y = model, y

    def __call__(self, x):
        return self.model(x, self.y)

    def __getattr__(self, name):
        return getattr(self.model, name)


def unpack_batch(real, G, D):
    """(real, G, D) for one step: a tensor batch as it is; an (images, labels) pair for a conditional
    G (n_classes > 0) gives the images, and G and D with those labels bound (the fakes are asked for
    the real batch's labels). Anything else raises a TypeError that says what to pass."""
    if torch.is_tensor(real):
        return real, G, D
    pair = isinstance(real, (tuple, list)) and len(real) == 2 and all(torch.is_tensor(t) for t in real)
    if pair and getattr(G, "n_classes", 0):
        x, y = real
        return x, WithLabels(G, y), WithLabels(D, y)
    kind = f"{type(real).__name__} (images, labels) for a G without labels (n_classes=0)" if pair else type(real).__name__
    raise TypeError(BATCH_HELP.format(kind))


def d_step(G, D, opt_d, real, noise, loss, clip_value=None):
    """One discriminator update of Algorithm 1: ascend log D(x) + log(1 - D(G(z))), i.e. descend
    loss.d_loss. real: (m, ...) a minibatch of data; noise: n -> (n, noise_dim); loss: a GANLoss.
    An (images, labels) batch trains a conditional GAN: G(z, y) and D(x, y) (`unpack_batch`).
    Returns the detached (loss_d, real_out, fake_out): a scalar and D's raw outputs (m, 1)."""
    real, G, D = unpack_batch(real, G, D)
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
    non-saturating loss ascends log D(G(z))). The gradient flows back through D to G, but only
    G's parameters get gradients: D's weight gradients would be thrown away by the next d_step
    (skipping them saves ~5% of the step's arithmetic, and G's update is bitwise the same).
    real: (m, ...), used by feature matching. Returns loss_g, detached."""
    real, G, D = unpack_batch(real, G, D)
    loss_g = loss.g_loss(D, G(noise(len(real))), real)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward(inputs=[p for p in G.parameters() if p.requires_grad])
    opt_g.step()
    return loss_g.detach()


def _k_schedule(k, batches):
    """k as a function of the number of G steps done (an int k is the same at every step)."""
    if callable(k):
        def k_at(step):
            value = k(step)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"k({step}) must be an int >= 1 (D steps before the next G step), got {value!r}")
            return value
        return k_at
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k (discriminator steps per generator step) must be an int >= 1 or a function "
                         f"of the G step, got {k!r}")
    if batches < k:
        raise ValueError(f"an epoch has {batches} batches, fewer than k={k}: use more data or a smaller k")
    return lambda step: k


def _check_settings(epochs, **every):
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    for name, value in every.items():
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be an int >= 1 (how often, in steps or epochs), got {value!r}")


def step_functions(G, D, opt_g, opt_d, noise, loss, clip_value, data, fast=False):
    """(d_fn, g_fn): d_fn(real) -> (loss_d, real_out, fake_out) and g_fn(real) -> loss_g, the two
    steps train_gan calls. fast=True takes them from gan_utils.fast.fast_steps (CUDA graphs),
    which sees one batch of `data` (read with torch's RNG put back) and captures the optimizers'
    state tensors: build them after any load or restore of the optimizers."""
    if not fast:
        return (lambda real: d_step(G, D, opt_d, real, noise, loss, clip_value),
                lambda real: g_step(G, D, opt_g, real, noise, loss))
    from .fast import fast_steps
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_initialized() else []):
        real_example = next(iter(data))
    return fast_steps(G, D, opt_g, opt_d, noise, loss, real_example, clip_value=clip_value)


def train_gan(G, D, data, *, noise, epochs, opt_g, opt_d, loss="nonsaturating", k=1,
              real_label=1.0, clip_value=None, callback=None, callback_every=100, log_every=25,
              checkpoint_path=None, checkpoint_every=1, resume=False, progress=True,
              tensorboard_dir=None, history=None, fast=False):
    """Train G and D with Algorithm 1 and return the history (see `new_history`).

    data: re-iterable of real minibatches (m, ...), one pass per epoch (TensorBatches, ToyBatches), or
    of (images, labels) pairs for a conditional G (n_classes > 0; `unpack_batch`);
    noise: function n -> (n, noise_dim); loss: a name of `losses.get_losses` or a `GANLoss`;
    k: D steps per G step, an int or a function of the number of G steps done (WGAN:
    ``lambda step: 100 if step < 25 or step % 500 == 0 else 5``); real_label: 0.9 for one-sided
    label smoothing; clip_value: clip D's weights to [-c, c] after each D step (WGAN).
    callback(step, G, D, history) runs before training and every `callback_every` G steps.
    Every `log_every` G steps the losses are copied to the history (one host sync) and checked:
    NaN or inf raises TrainingDiverged after restoring the last good state (the end of an epoch
    whose weights were checked finite). With checkpoint_path, a checkpoint is saved every
    `checkpoint_every` epochs and at the end; resume=True continues from it if it exists.
    Passing the `history` of an earlier call continues it (a second phase of training): steps and
    epoch labels go on from its last row. Ctrl-C stops cleanly and keeps everything trained so far.
    fast=True: the steps of `gan_utils.fast.fast_steps` (CUDA graphs) instead of d_step/g_step.
    """
    _check_settings(epochs, callback_every=callback_every, log_every=log_every, checkpoint_every=checkpoint_every)
    k_at = _k_schedule(k, len(data))
    loss = get_losses(loss, real_label) if isinstance(loss, str) else loss
    if not isinstance(loss, GANLoss):
        raise TypeError(f"loss must be a loss name such as 'nonsaturating' or a gan_utils.GANLoss, got {loss!r}")
    history = history if history is not None else new_history()
    start_epoch = history["epoch"][-1] + 1 if history["epoch"] else 0    # a second phase goes on
    end_epoch = start_epoch + epochs
    saver = Checkpointer(checkpoint_path, checkpoint_every, G, D, opt_g, opt_d)
    state = saver.resume() if resume else None
    if state:
        history, start_epoch = state["history"], state["epoch"]
    total = (end_epoch - start_epoch) * (len(data) // k) if isinstance(k, int) else None
    log = Recorder(history, loss.critic, total, progress, tensorboard_dir, state and state["step"])
    guard = NaNGuard(G, D, opt_g, opt_d, step=log.step)
    d_fn, g_fn = step_functions(G, D, opt_g, opt_d, noise, loss, clip_value, data, fast)
    try:
        if callback is not None and log.step == 0:
            callback(0, G, D, history)
        for epoch in range(start_epoch, end_epoch):
            log.epoch, d_steps = epoch, 0
            for real in data:
                loss_d, real_out, fake_out = d_fn(real)           # (1) D step, on every minibatch
                d_steps += 1
                if d_steps < k_at(log.step):
                    continue
                d_steps = 0
                with interrupts_deferred():                       # a G step and its row go together
                    log.add(loss_d, g_fn(real), real_out, fake_out)   # (2) G step, after k D steps
                if log.step % log_every == 0:
                    log.flush()
                if callback is not None and log.step % callback_every == 0:
                    log.flush()
                    callback(log.step, G, D, history)
            log.flush()
            guard.epoch_end(log.step, epoch, last=epoch + 1 == end_epoch)  # finite: a good state
            saver.epoch_end(log.step, epoch + 1, epoch + 1 == end_epoch, history)
    except KeyboardInterrupt:
        try:
            log.flush()
        except NonFinite as err:
            raise guard.restore(history, err) from None
        print(f"Interrupted at step {history['step'][-1] if history['step'] else 0}: G and D keep "
              f"what they learned; the history is returned.")
    except NonFinite as err:
        raise guard.restore(history, err) from None
    finally:
        log.close()
    return history
