"""Issue 28, runs and persistence: nothing half-trained recorded as finished, checked side files, keys that mean
one run, locks, full disks, read-only reloads, exact resume of 04_mnist's critics and 03_ema's averages."""
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gan_utils as gu
from gan_utils import checkpoints, runs

ROOT = Path(__file__).resolve().parents[1]


def toy_run(folder, epochs=2, stop_at=None, objects=None, settings=None):
    """A tiny train_run (4 G steps per epoch); stop_at: Ctrl-C at that G step. objects: reuse (G, D, opts, watcher)."""
    objects = objects or fresh_objects()
    G, D, opt_g, opt_d, watcher = objects
    gu.seed_everything(5)
    data = gu.TensorBatches(torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)), 16)
    noise = gu.make_noise(4)
    if stop_at is not None:
        def noise(n, calls=[]):                                  # noqa: B006 -- counts the G steps
            calls.append(n)
            if len(calls) == 2 * stop_at:                        # a D step and a G step draw noise each
                raise KeyboardInterrupt
            return torch.randn(n, 4)
    history = gu.train_run(G, D, data, name="toy", settings=settings or {"lr": 1e-3}, watcher=watcher, epochs=epochs,
                           folder=folder, noise=noise, opt_g=opt_g, opt_d=opt_d, progress=False)
    return objects, history


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# -- High 2: a notebook cell rerun after a Ctrl-C continues the run --------------------------------------------

def fresh_objects():
    gu.seed_everything(0)
    G, D = gu.MLPGenerator(noise_dim=4, widths=(8,)), gu.MLPDiscriminator(widths=(8,))
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    return (G, D, gu.make_optimizer(G, lr=1e-3), gu.make_optimizer(D, lr=1e-3),
            gu.Watcher(z, lambda G: {"frechet": float(gu.generate(G, z).std())}, 4))


def test_a_rerun_after_a_ctrl_c_in_the_first_epoch_continues_the_run(tmp_path):
    """Without the checkpoint before epoch 1, the rerun took the half-trained G as a new run's start."""
    (G, *_), history = toy_run(tmp_path / "a")
    own = fresh_objects()
    with pytest.raises(gu.TrainingInterrupted):                  # Ctrl-C at G step 3 of epoch 1
        toy_run(tmp_path / "b", stop_at=3, objects=own)
    _, history2 = toy_run(tmp_path / "b", objects=own)           # the cell run again, nothing rebuilt
    assert history2 == history and same(G, own[0])


def test_a_rerun_with_the_same_objects_after_a_later_ctrl_c_resumes_exactly(tmp_path):
    (G, *_), history = toy_run(tmp_path / "a", epochs=3)
    own = fresh_objects()
    with pytest.raises(gu.TrainingInterrupted):
        toy_run(tmp_path / "b", epochs=3, stop_at=7, objects=own)
    _, history2 = toy_run(tmp_path / "b", epochs=3, objects=own)
    assert history2 == history and same(G, own[0]) and sorted(own[4].scores) == [0, 1, 2, 3]


# -- High 5: settings keys ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [torch.zeros(3), len, gu.get_loss("nonsaturating"), {1, 2}, float("nan")])
def test_settings_key_refuses_what_is_not_json(value):
    with pytest.raises((TypeError, ValueError), match="settings_key: settings\\['x'\\]"):
        runs.settings_key({"x": value})


def test_settings_key_normalises_numbers_and_keeps_the_committed_keys():
    assert runs.settings_key({"lr": 1}) == runs.settings_key({"lr": 1.0}) != runs.settings_key({"lr": 1.5})
    assert runs.settings_key({"b": (0.5, 2.0)}) == runs.settings_key({"b": [0.5, 2]})
    lr03 = {"data": "paper", "n_train": 50000, "seed": 0, "noise_dim": 64, "batch": 128, "lr": 2e-4,
            "betas": [0.5, 0.999], "loss": "nonsaturating", "epochs": 250, "eval_every": 1, "n_eval": 1000}
    assert runs.settings_key(lr03) == "9e5c68f5272e"
    wgan = {"experiment": "04_mnist", "trick": "WGAN", "seed": 0, "epochs": 3, "data": "paper", "n_train": 50000}
    assert runs.settings_key(wgan) == "1637ac944942"
    dcgan05 = {"data": "paper", "n_train": 50000, "seed": 0, "noise_dim": 64, "batch": 128, "model": "dcgan",
               "width": 16, "upsample": False, "conditional": False, "lr": 2e-4, "betas": [0.5, 0.999],
               "loss": "nonsaturating", "epochs": 10, "n_eval": 1000}
    assert runs.settings_key(dcgan05) == "045210070800"       # dcgan_run's settings before issue 28


def test_dcgan_run_keys_name_the_data(tmp_path, monkeypatch):
    from gan_utils.lessons import dcgan
    seen = []
    monkeypatch.setattr(dcgan, "train_run", lambda *a, settings, **k: seen.append(settings) or {})
    monkeypatch.setattr(dcgan, "Watcher", lambda *a, **k: None)
    split = {"protocol": "offline", "dataset": "fashion_mnist", "x_train": torch.rand(256, 1, 28, 28),
             "y_train": torch.zeros(256, dtype=torch.long), "x_valid": torch.rand(64, 1, 28, 28)}
    dcgan.dcgan_run(split, epochs=1, width=4, classifier=gu.classifier.MNISTClassifier().eval(), folder=tmp_path)
    assert seen[0]["dataset"] == "fashion_mnist" and seen[0]["n_valid"] == 64 and seen[0]["split_seed"] == 2014


# -- High 5: the watcher's side file ----------------------------------------------------------------------------

def side_of(folder, settings=None):
    return folder / f"toy-{runs.settings_key(settings or {'lr': 1e-3})}.watch.pt"


def test_a_side_file_of_another_run_is_refused(tmp_path):
    toy_run(tmp_path)
    toy_run(tmp_path, settings={"lr": 2e-3})
    side_of(tmp_path, {"lr": 2e-3}).write_bytes(side_of(tmp_path).read_bytes())   # run A's over run B's
    with pytest.raises(checkpoints.CheckpointError, match="belongs to the run with key"):
        toy_run(tmp_path, settings={"lr": 2e-3})


def test_a_damaged_or_missing_side_file_is_refused(tmp_path):
    toy_run(tmp_path)
    side = side_of(tmp_path)
    state = torch.load(side, weights_only=True)
    state["watcher"]["best"]["epoch"] = 1 - state["watcher"]["best"]["epoch"]
    torch.save(state, side)
    with pytest.raises(checkpoints.CheckpointError, match="no valid checksum"):
        toy_run(tmp_path)
    side.unlink()
    with pytest.raises(checkpoints.CheckpointError, match="watch.pt is missing beside its checkpoint"):
        toy_run(tmp_path)


class Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickled_code_in_a_side_file_or_checkpoint_is_refused_without_torchs_advice(tmp_path):
    toy_run(tmp_path)
    torch.save({"key": "x", "watcher": Payload()}, side_of(tmp_path))
    with pytest.raises(checkpoints.CheckpointError, match="pickled Python objects") as err:
        toy_run(tmp_path)
    assert "weights_only" not in str(err.value) and "watch.pt" in str(err.value)


# -- Medium 7: text and truncated files under the key ------------------------------------------------------------

@pytest.mark.parametrize("content", ["text", "truncated"])
def test_a_text_or_truncated_checkpoint_names_the_file(tmp_path, content):
    toy_run(tmp_path)
    path = side_of(tmp_path).with_name(side_of(tmp_path).name.replace(".watch.pt", ".pt"))
    path.write_bytes(b"not a checkpoint\n" if content == "text" else path.read_bytes()[:300])
    with pytest.raises(checkpoints.CheckpointError, match=str(path.name)):
        toy_run(tmp_path)


# -- Medium 8: locks --------------------------------------------------------------------------------------------

def test_a_second_process_on_the_same_key_is_refused_and_a_stale_lock_taken_over(tmp_path):
    lock = side_of(tmp_path).with_name(side_of(tmp_path).name.replace(".watch.pt", ".lock"))
    tmp_path.mkdir(exist_ok=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(str(other.pid))
        with pytest.raises(RuntimeError, match=f"being trained by process {other.pid}"):
            toy_run(tmp_path)
    finally:
        other.kill()
        other.wait()
    toy_run(tmp_path)                                          # its process is gone: the lock is taken over
    assert not lock.exists()


# -- Medium 10: a full disk ------------------------------------------------------------------------------------

def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_full_disk_names_the_file_and_the_space_and_leaves_no_temporaries(tmp_path, monkeypatch):
    G, D = gu.MLPGenerator(noise_dim=4, widths=(8,)), gu.MLPDiscriminator(widths=(8,))
    path = tmp_path / "ck.pt"
    stale = tmp_path / f".ck.pt.{dead_pid()}.abcd.tmp"                # left by a killed save
    stale.write_bytes(b"x" * 100)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="could not write .*ck.pt.*MiB free in"):
        checkpoints.save_checkpoint(path, G, D, gu.make_optimizer(G), gu.make_optimizer(D), 0, 0, gu.new_history())
    assert list(tmp_path.iterdir()) == []                             # the stale one and its own removed


# -- Medium 11: a read-only folder --------------------------------------------------------------------------------

def test_a_finished_run_reloads_without_writing_anything(tmp_path, monkeypatch):
    (G, *_), history = toy_run(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}

    def no_write(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    for module, name in ((checkpoints, "checkpoint_folder"), (runs, "save_atomic"), (runs, "_locked"),
                         (checkpoints, "save_atomic"), (runs, "save_checkpoint")):
        monkeypatch.setattr(module, name, no_write)
    (G2, *_), history2 = toy_run(tmp_path)
    assert history2 == history and same(G, G2)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


# -- Medium 9: exact resume of 04_mnist's critics ----------------------------------------------------------------

def test_critic_epochs_resume_exactly(load_script, tmp_path):
    mnist04 = load_script("experiments/04_mnist.py")
    k = lambda step: 3                                               # noqa: E731
    images = torch.rand(7 * 8, 2, generator=torch.Generator().manual_seed(0))   # 7 batches, 6 read per epoch

    def train(path, epochs, done=0):
        gu.seed_everything(0)
        G, D = gu.MLPGenerator(2, (2,), (8,), None, None), gu.MLPDiscriminator(2, (8,))
        data = mnist04.CriticEpochs(gu.TensorBatches(images, 8), k, g_steps=2, epoch=done, seed=3)
        history = gu.train_gan(G, D, data, noise=gu.make_noise(2), epochs=epochs, opt_g=gu.make_optimizer(G),
                               opt_d=gu.make_optimizer(D), k=k, progress=False,
                               checkpoint=checkpoints.Checkpoint(path))
        return G, history

    G, history = train(tmp_path / "a.pt", 3)
    train(tmp_path / "b.pt", 1)
    G2, history2 = train(tmp_path / "b.pt", 3, done=1)
    assert history2 == history and same(G, G2)


# -- Medium 9 and High 1: 03_ema's averages ------------------------------------------------------------------------

def ema_main(ema, tmp_path, monkeypatch, argv):
    split = {"protocol": "synthetic", "x_train": torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(0)),
             "x_valid": torch.rand(64, 1, 28, 28)}
    monkeypatch.setattr(gu, "mnist_split", lambda **k: split)
    monkeypatch.setattr(gu, "load_classifier", lambda *a, **k: gu.classifier.MNISTClassifier().eval())
    monkeypatch.setattr(gu, "generator_scores", lambda G, *a: {"kl": 0.0, "frechet": float(
        sum(p.detach().sum() for p in G.parameters()))})
    monkeypatch.setattr(gu, "evaluate_generator", lambda *a: None)
    monkeypatch.setattr(gu, "evaluation_summary", lambda e: {})
    monkeypatch.setenv("GAN_CHECKPOINT_DIR", str(tmp_path / "ck"))
    monkeypatch.setattr(sys, "argv", ["03_ema.py", "--every", "1", "--out", str(tmp_path / "out.json"), *argv])
    ema.main()
    return torch.load(tmp_path / "ck" / "03_ema-cpu" / "last.pt", weights_only=True)


def test_03_ema_resumes_exactly_after_a_kill_between_its_two_files(load_script, tmp_path, monkeypatch):
    ema = load_script("experiments/03_ema.py")
    whole = ema_main(ema, tmp_path / "a", monkeypatch, ["--epochs", "2"])
    real = checkpoints.Checkpoint.epoch_end

    def killed(self, step, epochs_done, last, history):         # averages.pt of epoch 2 written, run.pt not
        if epochs_done == 2:
            raise KeyboardInterrupt
        real(self, step, epochs_done, last, history)

    monkeypatch.setattr(checkpoints.Checkpoint, "epoch_end", killed)
    with pytest.raises(SystemExit, match="interrupted"):
        ema_main(ema, tmp_path / "b", monkeypatch, ["--epochs", "2"])
    assert not (tmp_path / "b" / "out.json").exists()
    monkeypatch.setattr(checkpoints.Checkpoint, "epoch_end", real)
    resumed = ema_main(ema, tmp_path / "b", monkeypatch, ["--epochs", "2"])
    for name in whole:
        assert all(torch.equal(whole[name][k], resumed[name][k]) for k in whole[name]), name
    side = tmp_path / "b" / "ck" / "03_ema-cpu" / "averages.pt"
    torch.save({"epochs": {2: Payload()}, "checksum": "x"}, side)
    with pytest.raises(checkpoints.CheckpointError, match="pickled"):
        ema.load_averages(side, 2)


# -- High 2: scripts exit non-zero and write nothing after a Ctrl-C ------------------------------------------------

def interrupted(*args, **kwargs):
    raise gu.TrainingInterrupted(gu.new_history())


def test_04_mnist_stops_the_sweep_at_a_ctrl_c_and_writes_nothing(load_script, tmp_path, monkeypatch):
    mnist04 = load_script("experiments/04_mnist.py")
    calls = []
    monkeypatch.setattr(mnist04, "run", lambda *a: calls.append(a) or interrupted())
    monkeypatch.setattr(gu, "mnist_split", lambda: {})
    monkeypatch.setattr(gu, "load_classifier", lambda *a, **k: None)
    monkeypatch.setattr(sys, "argv", ["04_mnist.py", "--tricks", "GAN", "R1", "--out", str(tmp_path / "r.json")])
    with pytest.raises(SystemExit, match="GAN/0/5 interrupted.*no result written") as err:
        mnist04.main()
    assert err.value.code != 0 and len(calls) == 1 and not (tmp_path / "r.json").exists()
    (tmp_path / "r.json").write_text("{broken")
    with pytest.raises(ValueError, match="r.json is not valid JSON"):
        mnist04.main()


def test_04_mixtures_stops_at_a_ctrl_c_and_writes_nothing(load_script, tmp_path, monkeypatch):
    mix = load_script("experiments/04_mixtures.py")
    monkeypatch.setattr(mix.seeds, "train_toy_seeds", interrupted)
    monkeypatch.setattr(sys, "argv", ["04_mixtures.py", "--mixture", "ring", "--out", str(tmp_path / "r.json")])
    with pytest.raises(SystemExit, match="interrupted") as err:
        mix.main()
    assert err.value.code != 0 and not (tmp_path / "r.json").exists()


def test_04_mixtures_scores_the_last_step_when_record_every_does_not_divide_it(load_script):
    mix = load_script("experiments/04_mixtures.py")
    r = mix.run("ring", "GAN", [0, 1], steps=3, record_every=2, n_eval=200)
    assert sorted(r["curve"]) == ["0", "2"] and len(r["final"]["modes_covered"]) == 2


def test_05_dcgan_jobs_exit_on_a_ctrl_c_without_results(load_script, monkeypatch):
    dc05 = load_script("experiments/05_dcgan.py")
    monkeypatch.setattr(dc05.dcgan, "dcgan_run", interrupted)
    monkeypatch.setattr(gu, "mnist_split", lambda **k: {})
    written = []
    monkeypatch.setattr(dc05, "write_json", lambda *a, **k: written.append(a))
    for job in ("dcgan", "ablation"):
        args = type("Args", (), {"job": job, "width": 16, "conditioning": "concat", "minibatch": 16,
                                      "seed": 0})
        with pytest.raises(SystemExit, match=f"{job} interrupted") as err:
            dc05.main(args)
        assert err.value.code != 0
    assert written == []


def test_03_learning_rates_exits_on_a_ctrl_c(load_script, monkeypatch):
    lr03 = load_script("experiments/03_learning_rates.py")
    split = {"protocol": "synthetic", "x_train": torch.rand(256, 1, 28, 28), "x_valid": torch.rand(8, 1, 28, 28)}
    monkeypatch.setattr(gu, "mnist_split", lambda: split)
    monkeypatch.setattr(gu, "load_classifier", lambda *a, **k: gu.classifier.MNISTClassifier().eval())
    monkeypatch.setattr(gu, "train_run", interrupted)
    with pytest.raises(SystemExit, match="interrupted") as err:
        lr03.run("dcgan", 2, torch.device("cpu"))
    assert err.value.code != 0


# -- Issue 27 and Low: optimizer flags, crafted checkpoints, CLI validation ---------------------------------------

def ckpt(tmp_path, foreach=None):
    gu.seed_everything(0)
    G, D = gu.MLPGenerator(noise_dim=4, widths=(8,)), gu.MLPDiscriminator(widths=(8,))
    opt_g = torch.optim.Adam(G.parameters(), foreach=foreach)
    opt_d = torch.optim.Adam(D.parameters(), foreach=foreach)
    gu.train_gan(G, D, gu.TensorBatches(torch.rand(32, 1, 28, 28), 16), noise=gu.make_noise(4), epochs=1,
                 opt_g=opt_g, opt_d=opt_d, progress=False, checkpoint=checkpoints.Checkpoint(tmp_path / "c.pt"))
    return tmp_path / "c.pt", G, D, opt_g, opt_d


def test_implementation_flags_of_optimizers_are_not_compared(tmp_path, capsys):
    path, G, D, _, _ = ckpt(tmp_path, foreach=True)
    capsys.readouterr()
    checkpoints.load_checkpoint(path, G, D, torch.optim.Adam(G.parameters(), foreach=False),
                                torch.optim.Adam(D.parameters(), foreach=False))
    assert "Keeping your optimizer settings" not in capsys.readouterr().out


def rewrite(path, edit):
    state = torch.load(path, weights_only=True)
    state.pop("checksum")
    edit(state)
    state["checksum"] = checkpoints.checksum(state)
    torch.save(state, path)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["opt_g"]["state"][0].update(exp_avg_sq=-s["opt_g"]["state"][0]["exp_avg_sq"] - 1), "negative"),
    (lambda s: s.update(epoch=10 ** 9), "0 <= epoch <= step"),
    (lambda s: s.update(step=1), "disagree with its history"),
])
def test_crafted_checkpoints_are_refused(tmp_path, edit, message):
    path, G, D, opt_g, opt_d = ckpt(tmp_path)
    rewrite(path, edit)
    with pytest.raises(checkpoints.CheckpointError, match=message):
        checkpoints.load_checkpoint(path, G, D, opt_g, opt_d)


def test_write_json_is_atomic(tmp_path, monkeypatch, load_script):
    common = load_script("experiments/common.py")
    out = tmp_path / "r.json"
    common.write_json(out, {"a": 1})
    monkeypatch.setattr(json, "dumps", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(OSError, match="could not write"):
        common.write_json(out, {"a": 2})
    assert json.loads(out.read_text()) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize("script, args, message", [
    ("04_mixtures.py", ["--seeds", "0"], "--seeds: must be an int >= 1"),
    ("04_mixtures.py", ["--steps", "0"], "--steps: must be an int >= 1"),
    ("04_mixtures.py", ["--record-every", "0"], "--record-every: must be an int >= 1"),
    ("05_dcgan.py", ["--job", "dcgan", "--width", "0"], "--width: must be an int >= 1"),
    ("05_dcgan.py", ["--job", "dcgan", "--threads", "-1"], "--threads: must be an int >= 1"),
    ("03_ema.py", ["--device", "cuda:7"], "--device: no device cuda:7"),
])
def test_bad_command_lines_get_argparse_errors(script, args, message):
    done = subprocess.run([sys.executable, str(ROOT / "experiments" / script), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_side_files_are_written_through_unique_temporary_names(tmp_path, monkeypatch):
    made, real = [], checkpoints.tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        made.append(Path(name).name)
        return fd, name

    monkeypatch.setattr(checkpoints.tempfile, "mkstemp", mkstemp)
    toy_run(tmp_path)
    sides = [n for n in made if n.startswith(f".{side_of(tmp_path).name}.{os.getpid()}.")]
    assert len(sides) == 3 and len(set(sides)) == 3             # epochs 0, 1 and 2, each its own name
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".pt", ".pt"]
