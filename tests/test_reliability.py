"""Issue 8 (reliability) for the training loop: the divergence guard, bad settings found before
training, Ctrl-C bookkeeping, and clear errors for the wrong kind of data or learning rate."""
import os
import signal

import pytest
import torch

import gan_utils as gu


def every(n, callback):
    """A train_gan callback that runs every n G steps (train_gan reads callback.every)."""
    callback.every = n
    return callback



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
    kw = dict(noise=gu.make_noise(4), epochs=6, opt_g=opt_g, opt_d=opt_d, progress=False)
    data = gu.ToyBatches(gu.sample_line_2d, 32, 1)
    with pytest.raises(gu.TrainingDiverged, match=r"restored to step (\d+)") as err:
        gu.train_gan(G, D, data, checkpoint=gu.checkpoints.Checkpoint(ckpt, resume=False), **kw)
    restored = int(str(err.value).split("restored to step ")[1].split(";")[0])
    assert finite(G) and finite(D), "the restored state must be finite"
    assert err.value.history["step"][-1] == restored
    saved = torch.load(ckpt, weights_only=True)               # the checkpoint was written from a good state
    assert all(torch.isfinite(v).all() for part in ("G", "D") for v in saved[part].values())
    assert saved["step"] <= restored
    with pytest.raises(gu.TrainingDiverged):                  # resuming starts from finite weights
        gu.train_gan(G, D, data, checkpoint=gu.checkpoints.Checkpoint(ckpt, resume=True), **kw)
    assert finite(G) and finite(D)


def test_save_checkpoint_refuses_nan_weights(tmp_path):
    G, D, _, kw = toy()
    with torch.no_grad():
        next(G.parameters())[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite weights"):
        gu.checkpoints.save_checkpoint(tmp_path / "ck.pt", G, D, kw["opt_g"], kw["opt_d"], 1, 1, gu.new_history())
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
        gu.train_gan(G, D, data, epochs=1, checkpoint=gu.checkpoints.Checkpoint(folder / "ck.pt"), **kw)
    assert not steps, "the folder must be checked before the first step"


EVERY_ZERO = {   # each "every" setting at 0: what it is passed as, and the error it gets
    "Checkpoint every": (lambda path: {"checkpoint": gu.checkpoints.Checkpoint(path, every=0)},
                         "Checkpoint: every must be an int >= 1"),
    "Progress every": (lambda path: {"checkpoint": gu.checkpoints.Checkpoint(path),
                                     "progress": gu.Progress(bar=False, every=0)}, "Progress.every must be an int >= 1"),
    "callback.every": (lambda path: {"checkpoint": gu.checkpoints.Checkpoint(path),
                                     "callback": every(0, lambda *args: None)}, "callback.every must be an int >= 1"),
}


@pytest.mark.parametrize("setting", EVERY_ZERO)
def test_every_zero_is_rejected_at_the_start(setting, tmp_path):
    G, D, data, kw = toy()
    make, message = EVERY_ZERO[setting]
    steps = []
    kw["opt_d"].step = lambda *a, _step=kw["opt_d"].step: steps.append(1) or _step()
    with pytest.raises(ValueError, match=message):
        gu.train_gan(G, D, data, epochs=1, **{"callback": lambda *a: None, **kw, **make(tmp_path / "ck.pt")})
    assert not (tmp_path / "ck.pt").exists() and not steps


def stop_at(n):
    def callback(step, G, D, history):
        if step == n:
            raise KeyboardInterrupt
    return callback


def test_running_again_after_an_interrupt_resumes_from_the_checkpoint(tmp_path):
    """Issue 8 item 10. (Was: a second call with history=, which is gone.) Ctrl-C in epoch 1 raises
    TrainingInterrupted with the finished steps; the checkpoint holds the last finished epoch, and
    the same call again resumes there and labels the epochs on: its checkpoint says 3 epochs are done."""
    G, D, data, kw = toy()
    checkpoint = gu.checkpoints.Checkpoint(tmp_path / "ck.pt")
    with pytest.raises(gu.TrainingInterrupted) as err:
        gu.train_gan(G, D, data, epochs=3, callback=every(6, stop_at(18)), checkpoint=checkpoint, **kw)
    history = err.value.history
    assert history["step"][-1] == 18 and history["epoch"][-1] == 1
    state = gu.checkpoints.load_checkpoint(tmp_path / "ck.pt", G, D, restore_rng=False)
    assert state["epoch"] == 1 and state["step"] == 12
    history = gu.train_gan(G, D, data, epochs=3, checkpoint=checkpoint, **kw)
    assert history["step"] == list(range(1, 37)) and history["epoch"] == [0] * 12 + [1] * 12 + [2] * 12
    assert gu.checkpoints.load_checkpoint(tmp_path / "ck.pt", G, D, restore_rng=False)["epoch"] == 3


def test_interrupt_in_the_step_0_callback_is_caught():
    """Ctrl-C in the step-0 callback: TrainingInterrupted with an empty history, G and D untouched."""
    G, D, data, kw = toy()
    before = [p.detach().clone() for p in (*G.parameters(), *D.parameters())]
    with pytest.raises(gu.TrainingInterrupted, match="at G step 0") as err:
        gu.train_gan(G, D, data, epochs=1, callback=stop_at(0), **kw)
    assert err.value.history == gu.new_history()
    assert all(torch.equal(a, b) for a, b in zip(before, (*G.parameters(), *D.parameters())))


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


def test_ctrl_c_during_the_history_flush_drops_no_rows(monkeypatch):
    G, D, data, kw = toy()
    g_steps = []
    kw["opt_g"].step = lambda *a, _step=kw["opt_g"].step: g_steps.append(1) or _step()
    history = gu.new_history()
    history["loss_g"] = SigintOnAppend(7)          # inside the second flush of 5 rows
    monkeypatch.setattr(gu.train, "new_history", lambda: history)   # the history train_gan starts
    with pytest.raises(gu.TrainingInterrupted) as err:
        gu.train_gan(G, D, data, epochs=2, **{**kw, "progress": gu.Progress(bar=False, every=5)})
    assert err.value.history is history
    lengths = {key: len(values) for key, values in history.items()}
    assert len(set(lengths.values())) == 1, f"ragged history {lengths}"
    assert history["step"] == list(range(1, len(g_steps) + 1)), "every G step has its row"
    assert len(g_steps) == 10                      # it stopped right after that flush


def test_ctrl_c_right_after_a_g_update_keeps_its_row():
    """Issue 8 item 10: an interrupt between a G step and its history row loses neither."""
    G, D, data, kw = toy()
    g_steps = []

    def interrupt_after_update(opt, args, kwargs):
        g_steps.append(1)
        if len(g_steps) == 6:
            os.kill(os.getpid(), signal.SIGINT)     # Python raises it at the next instruction

    kw["opt_g"].register_step_post_hook(interrupt_after_update)
    with pytest.raises(gu.TrainingInterrupted) as err:
        gu.train_gan(G, D, data, epochs=2, **{**kw, "progress": gu.Progress(bar=False, every=5)})
    history = err.value.history
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
    history = gu.train_gan(G, D, data, epochs=2, **{**kw, "progress": gu.Progress(bar=False, every=5)})
    assert len(history["step"]) == 24 and all(type(v) is float for v in history["loss_g"])
    assert all(p.device.type == device for p in list(G.parameters()) + list(D.parameters()))
    samples = gu.generate(G, kw["noise"](5))
    assert samples.shape == (5, 2) and samples.device.type == device
