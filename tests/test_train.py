"""gan_utils.train_gan and checkpoints: Algorithm 1's bookkeeping, divergence, exact resume."""
import math

import pytest
import torch

import gan_utils as gu


def every(n, callback):
    """A train_gan callback that runs every n G steps (train_gan reads callback.every)."""
    callback.every = n
    return callback



def toy_setup(seed=0, batches=12, noise_dim=4, norm=None):
    gu.seed_everything(seed)
    G = gu.MLPGenerator(noise_dim=noise_dim, out_shape=(2,), widths=(16,), norm=norm, out=None)
    D = gu.MLPDiscriminator(in_dim=2, widths=(16,))
    data = gu.ToyBatches(lambda n: gu.sample_line_2d(n), 32, batches)
    return G, D, data, gu.make_noise(noise_dim), gu.make_optimizer(G, lr=1e-3), gu.make_optimizer(D, lr=1e-3)


def count_steps(opt):
    opt.n_steps = 0
    original = opt.step

    def step(*args, **kwargs):
        opt.n_steps += 1
        return original(*args, **kwargs)

    opt.step = step
    return opt


@pytest.mark.parametrize("k", [1, 3, 5])
def test_k_discriminator_steps_per_generator_step(k):
    G, D, data, noise, opt_g, opt_d = toy_setup(batches=15)
    count_steps(opt_g), count_steps(opt_d)
    history = gu.train_gan(G, D, data, noise=noise, epochs=2, k=k, opt_g=opt_g, opt_d=opt_d, progress=False)
    assert opt_d.n_steps == 30 and opt_g.n_steps == 2 * (15 // k)
    assert history["step"] == list(range(1, opt_g.n_steps + 1))
    assert history["epoch"][0] == 0 and history["epoch"][-1] == 1


def test_history_holds_plain_numbers_and_d_outputs_are_probabilities():
    G, D, data, noise, opt_g, opt_d = toy_setup()
    history = gu.train_gan(G, D, data, noise=noise, epochs=3, opt_g=opt_g, opt_d=opt_d,
                           progress=gu.Progress(bar=False, every=5))
    assert set(history) == set(gu.callbacks.HISTORY_KEYS) and len(history["loss_d"]) == 36
    assert all(type(v) is float for key in ("loss_d", "loss_g", "d_real", "d_fake") for v in history[key])
    assert all(0 <= v <= 1 for v in history["d_real"] + history["d_fake"])


def test_callback_runs_at_start_and_every_n_steps():
    G, D, data, noise, opt_g, opt_d = toy_setup()
    calls = []
    gu.train_gan(G, D, data, noise=noise, epochs=2, opt_g=opt_g, opt_d=opt_d, progress=False,
                 callback=every(10, lambda step, G, D, h: calls.append((step, len(h["step"])))))
    assert calls == [(0, 0), (10, 10), (20, 20)]


def test_wgan_clipping_keeps_critic_weights_in_range():
    G, D, data, noise, _, _ = toy_setup()
    opt_g, opt_d = gu.make_optimizer(G, "rmsprop", lr=5e-5), gu.make_optimizer(D, "rmsprop", lr=5e-5)
    history = gu.train_gan(G, D, data, noise=noise, epochs=1, k=5, loss=gu.wgan_loss(clip=0.01),
                           opt_g=opt_g, opt_d=opt_d, progress=False)
    assert all(p.abs().max() <= 0.01 for p in D.parameters()) and len(history["step"]) == 2
    assert gu.get_loss("wgan").clip is None                  # the plain name clips nothing


def test_bad_arguments_name_the_fix():
    G, D, data, noise, opt_g, opt_d = toy_setup()
    kw = dict(noise=noise, opt_g=opt_g, opt_d=opt_d, progress=False)
    with pytest.raises(ValueError, match="k .* must be an int >= 1"):
        gu.train_gan(G, D, data, epochs=1, k=0, **kw)
    with pytest.raises(ValueError, match="fewer than k"):
        gu.train_gan(G, D, data, epochs=1, k=20, **kw)
    with pytest.raises(ValueError, match="epochs"):
        gu.train_gan(G, D, data, epochs=0, **kw)
    with pytest.raises(ValueError, match="unknown loss"):
        gu.train_gan(G, D, data, epochs=1, loss="least-squares", **kw)
    with pytest.raises(ValueError, match="positive number such as 2e-4"):
        gu.make_optimizer(G, lr=-0.1)
    with pytest.raises(ValueError, match="unknown optimizer"):
        gu.make_optimizer(G, "adagrad")
    wide_data = gu.ToyBatches(lambda n: torch.zeros(n, 3), 8, 4)
    D3 = gu.MLPDiscriminator(in_dim=3, widths=(4,))
    with pytest.raises(ValueError, match=r"G makes samples of shape \(2,\) but the data has shape \(3,\)"):
        gu.train_gan(G, D3, wide_data, epochs=1, noise=noise, opt_g=opt_g,
                     opt_d=gu.make_optimizer(D3), progress=False)


class NaNAfter:
    """Real batches that turn to NaN after `n` batches, like a broken data pipeline."""

    def __init__(self, n):
        self.calls, self.n = 0, n

    def __call__(self, size):
        self.calls += 1
        x = gu.sample_line_2d(size)
        return x * float("nan") if self.calls > self.n else x


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()


def test_nan_stops_training_and_keeps_the_last_good_state_and_checkpoint(tmp_path):
    G, D, _, noise, opt_g, opt_d = toy_setup()
    data = gu.ToyBatches(NaNAfter(50), 32, 20)             # NaN from the 51st batch (mid epoch 3)
    ckpt = tmp_path / "run.pt"
    snapshots = {}
    with pytest.raises(gu.TrainingDiverged, match="NaN or infinite.*restored to step 40") as err:
        gu.train_gan(G, D, data, noise=noise, epochs=5, opt_g=opt_g, opt_d=opt_d,
                     progress=gu.Progress(bar=False, every=10), checkpoint=gu.checkpoints.Checkpoint(ckpt),
                     callback=every(10, lambda s, G, D, h: snapshots.setdefault(s, (params(G), params(D)))))
    assert "Lower the learning rate" in str(err.value)
    assert err.value.history["step"][-1] == 40 and len(err.value.history["loss_d"]) == 40
    assert torch.isfinite(params(G)).all() and torch.isfinite(params(D)).all()
    assert torch.equal(params(G), snapshots[40][0]) and torch.equal(params(D), snapshots[40][1])
    G2, D2, *_ = toy_setup(seed=1)
    state = gu.checkpoints.load_checkpoint(ckpt, G2, D2, restore_rng=False)
    assert state["epoch"] == 2 and state["step"] == 40 and torch.isfinite(params(G2)).all()


def run(tmp_path, epochs, resume, ckpt_every=1, seed=0, norm="batch"):
    gu.seed_everything(seed)
    G = gu.MLPGenerator(noise_dim=4, out_shape=(1, 4, 4), widths=(16, 16), norm=norm)
    D = gu.MLPDiscriminator(in_dim=16, widths=(16,))
    images = torch.rand(200, 1, 4, 4, generator=torch.Generator().manual_seed(0))  # the same data
    opt_g, opt_d = gu.make_optimizer(G, lr=1e-3), gu.make_optimizer(D, lr=1e-3)
    history = gu.train_gan(G, D, gu.TensorBatches(images, 16), noise=gu.make_noise(4), epochs=epochs,
                           opt_g=opt_g, opt_d=opt_d, progress=False,
                           checkpoint=gu.checkpoints.Checkpoint(tmp_path / "ck.pt", every=ckpt_every, resume=resume))
    return G, D, opt_d, history


def test_interrupted_and_resumed_run_is_bitwise_identical(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # bitwise equality needs a fixed thread count
    try:
        G_a, D_a, opt_a, hist_a = run(tmp_path / "a", epochs=4, resume=False)
        run(tmp_path / "b", epochs=2, resume=False)                      # "interrupted" after 2 epochs
        G_b, D_b, opt_b, hist_b = run(tmp_path / "b", epochs=4, resume=True, seed=123)  # fresh process
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(list(G_a.state_dict().values()) + list(D_a.state_dict().values()),
                    list(G_b.state_dict().values()) + list(D_b.state_dict().values())):
        assert torch.equal(a, b)
    assert hist_a == hist_b
    assert torch.equal(opt_a.state_dict()["state"][0]["exp_avg"], opt_b.state_dict()["state"][0]["exp_avg"])


def test_corrupted_truncated_or_mismatched_checkpoints_load_nothing(tmp_path):
    G, D, *_ = run(tmp_path, epochs=1, resume=False)
    ckpt = tmp_path / "ck.pt"
    blob = ckpt.read_bytes()
    G2 = gu.MLPGenerator(noise_dim=4, out_shape=(1, 4, 4), widths=(16, 16))
    D2 = gu.MLPDiscriminator(in_dim=16, widths=(16,))
    before = params(G2)
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint" * 100)
    for bad in ("cut.pt", "junk.pt"):
        with pytest.raises(gu.checkpoints.CheckpointError, match="corrupted or truncated"):
            gu.checkpoints.load_checkpoint(tmp_path / bad, G2, D2)
    torch.save({"G": {}}, tmp_path / "other.pt")
    with pytest.raises(gu.checkpoints.CheckpointError, match="not a gan_utils checkpoint"):
        gu.checkpoints.load_checkpoint(tmp_path / "other.pt", G2, D2)
    D_wide = gu.MLPDiscriminator(in_dim=16, widths=(32,))     # mismatched settings
    with pytest.raises(gu.checkpoints.CheckpointError, match="does not fit this MLPDiscriminator"):
        gu.checkpoints.load_checkpoint(ckpt, G2, D_wide)
    assert torch.equal(params(G2), before)                    # G was not half-loaded
    with pytest.raises(gu.checkpoints.CheckpointError, match="optimizer"):
        gu.checkpoints.load_checkpoint(ckpt, G2, D2, opt_g=gu.make_optimizer(D2))
    assert torch.equal(params(G2), before)
    with pytest.raises(FileNotFoundError):
        gu.checkpoints.load_checkpoint(tmp_path / "missing.pt", G2, D2)
    gu.checkpoints.load_checkpoint(ckpt, G2, D2)
    assert torch.equal(params(G2), params(G))
    assert not list(tmp_path.glob("*.tmp"))                   # atomic save leaves no temp file


def test_generate_uses_eval_mode_and_restores_training_mode():
    G = gu.MLPGenerator(noise_dim=4, out_shape=(2,), widths=(8,), norm="batch", out=None)
    z = torch.randn(1, 4)                       # batch of one: only possible in eval mode
    assert gu.generate(G, z).shape == (1, 2) and G.training
    assert not gu.generate(G, torch.randn(3, 4)).requires_grad


def test_interrupt_keeps_what_was_trained():
    """Ctrl-C raises TrainingInterrupted (a KeyboardInterrupt) after flushing: G and D keep what they
    learned up to the interrupt, and exc.history holds every finished G step."""
    G, D, data, noise, opt_g, opt_d = toy_setup()
    start, at_interrupt = (params(G), params(D)), {}

    def stop_at_20(step, G, D, history):
        if step == 20:
            at_interrupt["params"] = (params(G), params(D))
            raise KeyboardInterrupt

    with pytest.raises(gu.TrainingInterrupted, match="interrupted at G step 20") as err:
        gu.train_gan(G, D, data, noise=noise, epochs=5, opt_g=opt_g, opt_d=opt_d, progress=False,
                     callback=every(10, stop_at_20))
    assert isinstance(err.value, KeyboardInterrupt)
    history = err.value.history
    assert history["step"] == list(range(1, 21)) and len({len(v) for v in history.values()}) == 1
    assert torch.equal(params(G), at_interrupt["params"][0]) and torch.equal(params(D), at_interrupt["params"][1])
    assert not torch.equal(params(G), start[0]) and not torch.equal(params(D), start[1])


def test_tensorboard_logging(tmp_path):
    pytest.importorskip("tensorboard")
    G, D, data, noise, opt_g, opt_d = toy_setup()
    gu.train_gan(G, D, data, noise=noise, epochs=1, opt_g=opt_g, opt_d=opt_d,
                 progress=gu.Progress(bar=False, tensorboard_dir=tmp_path / "tb"))
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100


def test_a_resumed_run_continues_the_history(tmp_path):
    """(Was: a second phase with history=, which is gone.) Calling train_gan again with the same
    Checkpoint and more epochs goes on from the checkpoint: steps and callbacks continue its history."""
    G, D, data, noise, opt_g, opt_d = toy_setup()
    kw = dict(noise=noise, opt_g=opt_g, opt_d=opt_d, progress=False,
              checkpoint=gu.checkpoints.Checkpoint(tmp_path / "ck.pt"))
    history = gu.train_gan(G, D, data, epochs=1, **kw)
    assert history["step"] == list(range(1, 13))
    calls = []
    history = gu.train_gan(G, D, data, epochs=2, callback=every(6, lambda step, *_: calls.append(step)), **kw)
    assert history["step"] == list(range(1, 25)) and calls == [18, 24]
    assert history["epoch"] == [0] * 12 + [1] * 12


def test_k_can_be_a_function_of_the_g_step():
    """WGAN's schedule: many critic steps for the first G steps, k = 5 afterwards."""
    G, D, _, noise, opt_g, opt_d = toy_setup()
    count_steps(opt_g), count_steps(opt_d)
    data = gu.ToyBatches(lambda n: gu.sample_line_2d(n), 8, 40)
    seen = []

    def k(step):
        seen.append(step)
        return 10 if step < 2 else 5

    history = gu.train_gan(G, D, data, noise=noise, epochs=1, k=k, opt_g=opt_g, opt_d=opt_d, progress=False)
    assert opt_d.n_steps == 40 and opt_g.n_steps == 2 + 4        # 10 + 10 + 4 * 5 D steps
    assert history["step"] == list(range(1, 7)) and set(seen) == set(range(6))
    with pytest.raises(ValueError, match=r"k\(0\) must be an int >= 1"):
        gu.train_gan(G, D, data, noise=noise, epochs=1, k=lambda step: 0, opt_g=opt_g, opt_d=opt_d, progress=False)


def test_steps_take_the_step_functions_of_gan_utils_fast():
    """steps=fast_steps: train_gan calls it once, with a peeked real batch, and runs the step
    functions d_fn(real, G, D) / g_fn(real, G, D) it returns. Here a stand-in that wraps
    d_step/g_step must give the same run as the eager steps."""
    calls = []

    def fast_steps(G, D, opt_g, opt_d, noise, loss, real_example, verbose=True):
        calls.append(tuple(real_example.shape))
        return (lambda real, G, D: gu.d_step(G, D, opt_d, real, noise, loss),
                lambda real, G, D: gu.g_step(G, D, opt_g, real, noise, loss))

    runs = []
    for steps in (gu.steps.eager_steps, fast_steps):
        G, D, data, noise, opt_g, opt_d = toy_setup()
        runs.append((gu.train_gan(G, D, data, noise=noise, epochs=2, opt_g=opt_g, opt_d=opt_d, progress=False,
                                  steps=steps), params(G)))
    assert calls == [(32, 2)]
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])   # peeking a batch kept the RNG


def test_the_real_fast_steps_train_like_the_eager_ones_on_the_cpu(device):
    """gan_utils.fast.fast_steps plugs into train_gan(steps=...): on the CPU it is the eager path."""
    G, D, data, noise, opt_g, opt_d = toy_setup()
    G, D = G.to(device), D.to(device)
    data = gu.ToyBatches(lambda n: gu.sample_line_2d(n, device=device), 32, 12)
    history = gu.train_gan(G, D, data, noise=gu.make_noise(4, device=device), epochs=1,
                           opt_g=gu.make_optimizer(G, lr=1e-3), opt_d=gu.make_optimizer(D, lr=1e-3),
                           progress=False, steps=gu.fast.fast_steps)
    assert history["step"] == list(range(1, 13)) and all(map(math.isfinite, history["loss_d"]))
