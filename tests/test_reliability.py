"""Issue 8 (reliability) for the training loop: the divergence guard, bad settings found before
training, Ctrl-C bookkeeping, and clear errors for the wrong kind of data or learning rate."""
import os
import signal

import pytest
import torch

import gan_utils as gu


def toy(seed=0, batches=12, device="cpu"):
    gu.seed_everything(seed)
    G = gu.MLPGenerator(noise_dim=4, out_shape=(2,), widths=(16,), norm=None, out=None).to(device)
    D = gu.MLPDiscriminator(in_dim=2, widths=(16,)).to(device)
    data = gu.ToyBatches(lambda n: gu.sample_line_2d(n, device=device), 32, batches)
    kw = dict(noise=gu.make_noise(4, device=device), opt_g=gu.make_optimizer(G, lr=1e-3),
              opt_d=gu.make_optimizer(D, lr=1e-3), progress=False)
    return G, D, data, kw


def finite(model):
    return all(torch.isfinite(p).all() for p in model.parameters())


def test_divergence_guard_never_keeps_or_saves_nan_weights(tmp_path):
    """Issue 8 item 1, the exact repro: the last update of an epoch makes the weights NaN while
    every logged loss is finite; the guard used to restore (and save) those NaN weights."""
    gu.seed_everything(1)
    G, D = gu.MLPGenerator(4, (2,), (16,), None, None), gu.MLPDiscriminator(2, (16,))
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=10 ** 6.5), torch.optim.SGD(D.parameters(), lr=10 ** 6.5)
    ckpt = tmp_path / "run.pt"
    kw = dict(noise=gu.make_noise(4), epochs=6, opt_g=opt_g, opt_d=opt_d, checkpoint_path=ckpt, progress=False)
    data = gu.ToyBatches(gu.sample_line_2d, 32, 1)
    with pytest.raises(gu.TrainingDiverged, match=r"restored to step (\d+)") as err:
        gu.train_gan(G, D, data, **kw)
    restored = int(str(err.value).split("restored to step ")[1].split(";")[0])
    assert finite(G) and finite(D), "the restored state must be finite"
    assert err.value.history["step"][-1] == restored
    saved = torch.load(ckpt, weights_only=True)               # the checkpoint was written from a good state
    assert all(torch.isfinite(v).all() for part in ("G", "D") for v in saved[part].values())
    assert saved["step"] <= restored
    with pytest.raises(gu.TrainingDiverged):                  # resuming starts from finite weights
        gu.train_gan(G, D, data, resume=True, **kw)
    assert finite(G) and finite(D)


def test_save_checkpoint_refuses_nan_weights(tmp_path):
    G, D, _, kw = toy()
    with torch.no_grad():
        next(G.parameters())[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite weights"):
        gu.save_checkpoint(tmp_path / "ck.pt", G, D, kw["opt_g"], kw["opt_d"], 1, 1, gu.new_history())
    assert not list(tmp_path.iterdir())


def test_unwritable_checkpoint_folder_is_found_before_training(tmp_path, monkeypatch):
    """Issue 8 item 9. As root chmod cannot make a folder read-only, so the OS refusal is simulated."""
    G, D, data, kw = toy()
    folder = tmp_path / "read-only"
    folder.mkdir()

    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(gu.checkpoints.tempfile, "mkstemp", refuse)
    steps = []
    kw["opt_d"].step = lambda *a, _step=kw["opt_d"].step: steps.append(1) or _step()
    with pytest.raises(PermissionError, match=f"cannot write checkpoints to the folder {folder}"):
        gu.train_gan(G, D, data, epochs=1, checkpoint_path=folder / "ck.pt", **kw)
    assert not steps, "the folder must be checked before the first step"


@pytest.mark.parametrize("setting", ["checkpoint_every", "log_every", "callback_every"])
def test_every_zero_is_rejected_at_the_start(setting, tmp_path):
    G, D, data, kw = toy()
    with pytest.raises(ValueError, match=f"{setting} must be an int >= 1"):
        gu.train_gan(G, D, data, epochs=1, checkpoint_path=tmp_path / "ck.pt", callback=lambda *a: None,
                     **{setting: 0}, **kw)
    assert not (tmp_path / "ck.pt").exists()


def stop_at(n):
    def callback(step, G, D, history):
        if step == n:
            raise KeyboardInterrupt
    return callback


def test_continuing_after_an_interrupt_continues_the_epoch_labels(tmp_path):
    """Issue 8 item 10: after Ctrl-C in epoch 1, a second call with history= goes on at epoch 2,
    and its checkpoint says 3 epochs are done."""
    G, D, data, kw = toy()
    history = gu.train_gan(G, D, data, epochs=5, callback=stop_at(18), callback_every=6, **kw)
    assert history["step"][-1] == 18 and history["epoch"][-1] == 1
    history = gu.train_gan(G, D, data, epochs=1, history=history, checkpoint_path=tmp_path / "ck.pt", **kw)
    assert history["step"][18:] == list(range(19, 31)) and set(history["epoch"][18:]) == {2}
    assert gu.load_checkpoint(tmp_path / "ck.pt", G, D, restore_rng=False)["epoch"] == 3


def test_interrupt_in_the_step_0_callback_is_caught(capsys):
    G, D, data, kw = toy()
    try:
        history = gu.train_gan(G, D, data, epochs=1, callback=stop_at(0), **kw)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C in the step-0 callback escaped train_gan")
    assert history == gu.new_history() and "Interrupted at step 0" in capsys.readouterr().out


class SigintOnAppend(list):
    """A history column that receives Ctrl-C (a real SIGINT) while its n-th value is appended:
    the moment between a step and the end of its history flush."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def append(self, value):
        super().append(value)
        if len(self) == self.n:
            signal.raise_signal(signal.SIGINT)


def test_ctrl_c_during_the_history_flush_drops_no_rows():
    G, D, data, kw = toy()
    g_steps = []
    kw["opt_g"].step = lambda *a, _step=kw["opt_g"].step: g_steps.append(1) or _step()
    history = gu.new_history()
    history["loss_g"] = SigintOnAppend(7)          # inside the second flush of 5 rows
    history = gu.train_gan(G, D, data, epochs=2, log_every=5, history=history, **kw)
    lengths = {key: len(values) for key, values in history.items()}
    assert len(set(lengths.values())) == 1, f"ragged history {lengths}"
    assert history["step"] == list(range(1, len(g_steps) + 1)), "every G step has its row"


def test_ctrl_c_right_after_a_g_update_keeps_its_row():
    """Issue 8 item 10: an interrupt between a G step and its history row loses neither."""
    G, D, data, kw = toy()
    g_steps = []

    def interrupt_after_update(opt, args, kwargs):
        g_steps.append(1)
        if len(g_steps) == 6:
            os.kill(os.getpid(), signal.SIGINT)     # Python raises it at the next instruction

    kw["opt_g"].register_step_post_hook(interrupt_after_update)
    history = gu.train_gan(G, D, data, epochs=2, log_every=5, **kw)
    assert len(g_steps) == 6 and history["step"] == list(range(1, 7)), (len(g_steps), history["step"])


def test_a_dataloader_of_pairs_gets_a_clear_error():
    """Issue 8 item 11."""
    G, D, _, kw = toy()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(64, 2), torch.zeros(64)),
                                         batch_size=16)
    with pytest.raises(TypeError, match=r"wants each batch to be a tensor of images.*got a list.*TensorBatches"):
        gu.train_gan(G, D, loader, epochs=1, **kw)
    history = gu.train_gan(G, D, [x for x, _ in loader], epochs=2, **kw)   # the adaptation it suggests
    assert len(history["step"]) == 8


def test_make_optimizer_rejects_absurd_learning_rates():
    G = gu.MLPGenerator(noise_dim=4, out_shape=(2,), widths=(8,), norm=None, out=None)
    for lr in (1e39, float("inf"), float("nan"), 11.0):
        with pytest.raises(ValueError, match="at most 10"):
            gu.make_optimizer(G, lr=lr)
    assert gu.make_optimizer(G, "sgd", lr=10.0).param_groups[0]["lr"] == 10.0


def test_train_gan_and_generate_run_on_device(device):
    """Issue 7: every tensor on the models' device; the history holds plain numbers."""
    G, D, data, kw = toy(device=device)
    history = gu.train_gan(G, D, data, epochs=2, log_every=5, **kw)
    assert len(history["step"]) == 24 and all(type(v) is float for v in history["loss_g"])
    assert all(p.device.type == device for p in list(G.parameters()) + list(D.parameters()))
    samples = gu.generate(G, kw["noise"](5))
    assert samples.shape == (5, 2) and samples.device.type == device
