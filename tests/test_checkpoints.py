"""Checkpoints (issues 7 and 8): atomic saves from concurrent writers, checksums, validation of
everything before anything changes, the caller's optimizer settings on resume, and devices."""
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

import gan_utils as gu


def players(seed=0, device="cpu", lr=1e-3, **opt_kw):
    gu.seed_everything(seed)
    G = gu.MLPGenerator(noise_dim=4, out_shape=(2,), widths=(16,), norm=None, out=None).to(device)
    D = gu.MLPDiscriminator(in_dim=2, widths=(16,)).to(device)
    return G, D, gu.make_optimizer(G, lr=lr, **opt_kw), gu.make_optimizer(D, lr=lr, **opt_kw)


def train(G, D, opt_g, opt_d, path, epochs=1, device="cpu", resume=False):
    data = gu.ToyBatches(lambda n: gu.sample_line_2d(n, device=device), 16, 4)
    return gu.train_gan(G, D, data, noise=gu.make_noise(4, device=device), epochs=epochs, opt_g=opt_g,
                        opt_d=opt_d, progress=False, checkpoint=gu.checkpoints.Checkpoint(path, resume=resume))


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "ck.pt"
    train(*players(), path)
    return path


def params(model):
    return torch.cat([p.detach().cpu().flatten() for p in model.parameters()]).clone()


def rewrite(path, **changes):
    """Change a checkpoint's content and give it a valid checksum again (a crafted file)."""
    from gan_utils.checkpoints import checksum

    state = torch.load(path, weights_only=True)
    state.pop("checksum", None)
    state.update(changes)
    state["checksum"] = checksum(state)
    torch.save(state, path)


def test_concurrent_saves_use_their_own_temporary_files(tmp_path, monkeypatch):
    """Issue 8 item 3: a second save starts while the first is writing. They must not share a
    temporary file, and a reader sees the old complete file or the new one, never a partial one."""
    path = tmp_path / "ck.pt"
    G, D, opt_g, opt_d = players()
    temps, seen = [], []
    real_mkstemp, real_save = gu.checkpoints.tempfile.mkstemp, torch.save

    def mkstemp(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        if Path(name).name.startswith(".ck.pt."):
            temps.append(name)
        return fd, name

    def published_step():                             # what a reader finds at `path` now
        return gu.checkpoints.load_checkpoint(path, G, D, restore_rng=False)["step"] if path.exists() else None

    def save(state, f, *args, **kwargs):
        seen.append(published_step())
        if state["step"] == 1:                       # the first writer is in flight: a second one saves
            gu.checkpoints.save_checkpoint(path, G, D, opt_g, opt_d, 2, 1, gu.new_history())
        real_save(state, f, *args, **kwargs)
        seen.append(published_step())

    monkeypatch.setattr(gu.checkpoints.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(torch, "save", save)
    gu.checkpoints.save_checkpoint(path, G, D, opt_g, opt_d, 1, 1, gu.new_history())
    assert len(temps) == 2 and temps[0] != temps[1] and all(Path(t).parent == tmp_path for t in temps)
    assert seen == [None, None, None, 2]             # only complete files were ever published
    assert gu.checkpoints.load_checkpoint(path, G, D, restore_rng=False)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_resume_keeps_the_callers_hyperparameters_and_restores_the_moments(ckpt, capsys):
    """Issue 8 item 4."""
    saved = torch.load(ckpt, weights_only=True)
    G, D, opt_g, opt_d = players(lr=1e-5, betas=(0.9, 0.99), weight_decay=0.1)
    capsys.readouterr()
    gu.checkpoints.load_checkpoint(ckpt, G, D, opt_g, opt_d)
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(lines) == 1 and "opt_g lr=1e-05 (checkpoint: 0.001)" in lines[0] and "betas" in lines[0]
    for opt in (opt_g, opt_d):
        group = opt.param_groups[0]
        assert (group["lr"], group["betas"], group["weight_decay"]) == (1e-5, (0.9, 0.99), 0.1)
    assert torch.equal(opt_g.state_dict()["state"][0]["exp_avg"], saved["opt_g"]["state"][0]["exp_avg"])
    assert int(opt_g.state_dict()["state"][0]["step"]) == 4
    G, D, opt_g, opt_d = players()
    capsys.readouterr()
    gu.checkpoints.load_checkpoint(ckpt, G, D, opt_g, opt_d)
    assert "Keeping your optimizer settings" not in capsys.readouterr().out   # same settings: silent


def flip_tensor_bytes(path, count=50):
    """Invert `count` bytes in the middle of the largest tensor stored in the zip archive."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    blob = bytearray(path.read_bytes())
    header = info.header_offset
    start = header + 30 + int.from_bytes(blob[header + 26:header + 28], "little") \
        + int.from_bytes(blob[header + 28:header + 30], "little") + info.file_size // 2 - count // 2
    blob[start:start + count] = bytes(b ^ 0xFF for b in blob[start:start + count])
    path.write_bytes(bytes(blob))


def test_bytes_changed_in_place_are_caught_by_the_checksum(ckpt):
    """Issue 8 item 5: a zip archive does not check its members when torch loads it."""
    flip_tensor_bytes(ckpt)
    G, D, opt_g, opt_d = players(seed=1)
    before = params(G)
    with pytest.raises(gu.checkpoints.CheckpointError, match="does not match its checksum"):
        gu.checkpoints.load_checkpoint(ckpt, G, D, opt_g, opt_d)
    assert torch.equal(params(G), before)


@pytest.mark.parametrize("change, message", [
    ("nan_weights", "NaN or infinite values"),
    ("history", "history is not a dict of equally long lists"),
    ("step", "step -1"),
])
def test_loaded_content_is_validated_before_anything_changes(ckpt, change, message):
    state = torch.load(ckpt, weights_only=True)
    if change == "nan_weights":
        weight = next(iter(state["G"]))
        rewrite(ckpt, G={**state["G"], weight: state["G"][weight] * float("nan")})
    elif change == "history":
        rewrite(ckpt, history={"step": 5})
    else:
        rewrite(ckpt, step=-1)
    G, D, opt_g, opt_d = players(seed=1)
    before = params(G), params(D)
    with pytest.raises(gu.checkpoints.CheckpointError, match=message):
        gu.checkpoints.load_checkpoint(ckpt, G, D, opt_g, opt_d)
    assert torch.equal(params(G), before[0]) and torch.equal(params(D), before[1])


@pytest.mark.parametrize("missing", ["checksum", "types"])
def test_a_checkpoint_without_checksum_or_types_is_refused(ckpt, missing):
    """(Was: loaded with a notice, as gan_utils 0.2.0 wrote them.) A checkpoint without its checksum
    or its optimizer types is refused before anything changes, whatever optimizers it is loaded into."""
    state = torch.load(ckpt, weights_only=True)
    state.pop(missing)
    torch.save(state, ckpt)
    G, D, opt_g, opt_d = players(seed=1)
    before = params(G), params(D)
    for opt in (opt_g, gu.make_optimizer(G, "sgd", lr=0.1)):
        with pytest.raises(gu.checkpoints.CheckpointError, match="not a gan_utils checkpoint"):
            gu.checkpoints.load_checkpoint(ckpt, G, D, opt, opt_d)
    assert torch.equal(params(G), before[0]) and torch.equal(params(D), before[1]) and not opt_g.state


def test_wrong_optimizers_and_bad_random_states_change_nothing(ckpt):
    """Issue 8 item 6: optimizer type, per-optimizer parameter shapes and every RNG entry are
    checked before G and D are touched."""
    G, D, opt_g, opt_d = players(seed=1)
    before = params(G), params(D)
    with pytest.raises(gu.checkpoints.CheckpointError, match="is a Adam, not a SGD"):
        gu.checkpoints.load_checkpoint(ckpt, G, D, gu.make_optimizer(G, "sgd", lr=0.1, momentum=0.5), opt_d)
    with pytest.raises(gu.checkpoints.CheckpointError, match="opt_g and opt_d swapped"):
        gu.checkpoints.load_checkpoint(ckpt, G, D, opt_d, opt_g)
    state = torch.load(ckpt, weights_only=True)
    for key, bad in (("torch", torch.zeros(3, dtype=torch.uint8)), ("numpy", ["MT19937", [1, 2], 0, 0, 0.0]),
                     ("python", (3, (1, 2), None)), ("cuda", [torch.zeros(2, 2)])):
        rewrite(ckpt, rng={**state["rng"], key: bad})
        with pytest.raises(gu.checkpoints.CheckpointError, match="random states are damaged"):
            gu.checkpoints.load_checkpoint(ckpt, G, D, opt_g, opt_d)
    assert torch.equal(params(G), before[0]) and torch.equal(params(D), before[1])
    assert not opt_g.state                           # the optimizers were not loaded either


def test_tilde_means_the_home_folder(tmp_path, monkeypatch):
    """Issue 8 item 12."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    G, D, opt_g, opt_d = players()
    gu.checkpoints.save_checkpoint("~/x.pt", G, D, opt_g, opt_d, 3, 1, gu.new_history())
    assert (tmp_path / "home" / "x.pt").is_file() and not list((tmp_path / "cwd").iterdir())
    assert gu.checkpoints.load_checkpoint("~/x.pt", G, D)["step"] == 3
    train(G, D, opt_g, opt_d, "~/run/ck.pt")
    assert (tmp_path / "home" / "run" / "ck.pt").is_file() and not list((tmp_path / "cwd").iterdir())


def test_checkpoints_move_between_the_cpu_and_device(tmp_path, device):
    """Issue 7: a run saved on `device` resumes on the CPU, and one saved on the CPU resumes on
    `device`; every tensor lands where its model or optimizer lives."""
    for saved_on, resumed_on in ((device, "cpu"), ("cpu", device)):
        path = tmp_path / f"{saved_on}-to-{resumed_on}.pt"
        train(*players(device=saved_on), path, device=saved_on)
        G, D, opt_g, opt_d = players(seed=1, device=resumed_on)
        history = train(G, D, opt_g, opt_d, path, epochs=2, device=resumed_on, resume=True)
        assert history["step"] == list(range(1, 9))
        tensors = list(G.state_dict().values()) + [t for s in opt_g.state.values() for t in s.values()
                                                   if torch.is_tensor(t) and t.ndim > 0]
        assert all(t.device.type == torch.device(resumed_on).type for t in tensors)


def test_a_cuda_random_state_is_dropped_with_a_notice_without_a_gpu(ckpt, monkeypatch, capsys):
    state = torch.load(ckpt, weights_only=True)
    rewrite(ckpt, rng={**state["rng"], "cuda": [torch.zeros(16, dtype=torch.uint8)]})  # as saved on a GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    G, D, opt_g, opt_d = players(seed=1)
    torch.manual_seed(99)
    gu.checkpoints.load_checkpoint(ckpt, G, D, opt_g, opt_d)
    out = capsys.readouterr().out
    assert out.count("CUDA random state is dropped") == 1
    assert torch.equal(torch.get_rng_state(), state["rng"]["torch"])


def test_a_failed_resume_overwrites_nothing(ckpt):
    """Issue 7: a checkpoint from another architecture is refused before any training or saving."""
    blob = ckpt.read_bytes()
    gu.seed_everything(0)
    G = gu.MLPGenerator(noise_dim=4, out_shape=(2,), widths=(32,), norm=None, out=None)
    D = gu.MLPDiscriminator(in_dim=2, widths=(16,))
    with pytest.raises(gu.checkpoints.CheckpointError, match="does not fit this MLPGenerator"):
        train(G, D, gu.make_optimizer(G), gu.make_optimizer(D), ckpt, epochs=3, resume=True)
    assert ckpt.read_bytes() == blob and sorted(p.name for p in ckpt.parent.iterdir()) == ["ck.pt"]


CUDA_RESUME = textwrap.dedent("""
    import sys, tempfile
    from pathlib import Path
    import torch
    torch.use_deterministic_algorithms(True)
    import gan_utils as gu

    def run(folder, epochs, resume, seed):
        gu.seed_everything(seed)
        G = gu.MLPGenerator(noise_dim=4, out_shape=(1, 4, 4), widths=(16, 16), norm="batch").cuda()
        D = gu.MLPDiscriminator(in_dim=16, widths=(16,)).cuda()
        images = torch.rand(200, 1, 4, 4, generator=torch.Generator().manual_seed(0)).cuda()
        opt_g, opt_d = gu.make_optimizer(G, lr=1e-3), gu.make_optimizer(D, lr=1e-3)
        history = gu.train_gan(G, D, gu.TensorBatches(images, 16), noise=gu.make_noise(4, device="cuda"),
                               epochs=epochs, opt_g=opt_g, opt_d=opt_d, progress=False,
                               checkpoint=gu.checkpoints.Checkpoint(Path(folder) / "ck.pt", resume=resume))
        return [*G.state_dict().values(), *D.state_dict().values(),
                *[t for s in opt_d.state.values() for t in s.values()]], history

    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        tensors_a, hist_a = run(a, 4, False, 0)
        run(b, 2, False, 0)                                   # "interrupted" after 2 epochs
        tensors_b, hist_b = run(b, 4, True, 123)              # resumed with another seed
    assert all(t.device.type == "cuda" for t in tensors_a[:4])
    assert hist_a == hist_b, "histories differ"
    assert all(torch.equal(x, y) for x, y in zip(tensors_a, tensors_b)), "weights differ"
    print("bitwise identical")
""")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resume_on_cuda_is_bitwise_exact_with_deterministic_algorithms():
    """Issue 7. CUBLAS_WORKSPACE_CONFIG must be set before CUDA starts: a fresh process."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", CUDA_RESUME], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "bitwise identical" in result.stdout, result.stderr[-3000:]
