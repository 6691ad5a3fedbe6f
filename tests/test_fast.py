"""gan_utils.fast.fast_steps: CUDA graphs on a GPU, the eager d_step/g_step elsewhere.

Every test takes `device` (cpu, and cuda when there is a GPU; see conftest.py)."""
import contextlib
import copy

import pytest
import torch

import gan_utils
from gan_utils.fast import fast_steps

BATCH, NOISE_DIM = 128, 64


def _setup(device, seed=0):
    gan_utils.seed_everything(seed)
    G = gan_utils.MLPGenerator(noise_dim=NOISE_DIM).to(device)
    D = gan_utils.MLPDiscriminator().to(device)
    opt_g, opt_d = gan_utils.make_optimizer(G), gan_utils.make_optimizer(D)
    noise = gan_utils.make_noise(NOISE_DIM, device=device)
    return G, D, opt_g, opt_d, noise, gan_utils.get_loss("nonsaturating")


def _batches(steps, device):
    gen = torch.Generator().manual_seed(1)   # the same images for both runs, off the global RNG
    return torch.rand(steps, BATCH, 1, 28, 28, generator=gen).to(device)


def _train(fast, steps, device, seed=0, capturable=False):
    """Losses (steps, 4): loss_d, loss_g, mean D(x) logit, mean D(G(z)) logit; and G.
    capturable: eager steps with Adam(capturable=True), the optimizer arithmetic of the fast path."""
    G, D, opt_g, opt_d, noise, loss = _setup(device, seed)
    reals = _batches(steps, device)
    if fast:
        d_fn, g_fn = fast_steps(G, D, opt_g, opt_d, noise, loss, reals[0])
    else:
        for group in (*opt_g.param_groups, *opt_d.param_groups):
            group["capturable"] = capturable
        d_fn, g_fn = gan_utils.steps.eager_steps(G, D, opt_g, opt_d, noise, loss)
    rows = []
    for real in reals:
        loss_d, real_out, fake_out = d_fn(real, G, D)
        loss_g = g_fn(real, G, D)
        rows.append(torch.stack([loss_d, loss_g, real_out.mean(), fake_out.mean()]))  # a copy
    return torch.stack(rows).cpu(), G


def test_fast_steps_match_eager(device, capsys):
    """Same seed: on CUDA the first 50 G steps' losses agree with eager steps within rtol 1e-3; on
    the CPU the fallback is eager itself, bitwise, and says so in one line.

    On CUDA the eager run uses Adam(capturable=True), as the graphs do. Against the default Adam
    (bias correction in Python doubles rather than on the GPU in float32) the step-1 losses agree to
    1e-7, but this GAN amplifies that rounding: on an H100 the losses were 8% apart by step 50 (7e-3
    for the DCGAN), as any change of float rounding would make them."""
    steps = 50 if device == "cuda" else 4
    eager, _ = _train(False, steps, device, capturable=device == "cuda")
    fast, _ = _train(True, steps, device)
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    if device == "cuda":
        assert "captured as CUDA graphs" in out
        torch.testing.assert_close(fast, eager, rtol=1e-3, atol=1e-5)
    else:
        assert "training eagerly" in out
        assert torch.equal(fast, eager)


def test_fast_steps_leave_models_and_rng_untouched(device):
    """Capture runs warm-up steps, then puts parameters, BatchNorm statistics, optimizer state and
    the random generator back: right after fast_steps everything is as before."""
    G, D, opt_g, opt_d, noise, loss = _setup(device)
    before = [t.clone() for t in (*G.state_dict().values(), *D.state_dict().values())]
    rng = torch.cuda.get_rng_state() if device == "cuda" else torch.get_rng_state()
    fast_steps(G, D, opt_g, opt_d, noise, loss, _batches(1, device)[0], verbose=False)
    after = [*G.state_dict().values(), *D.state_dict().values()]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert torch.equal(rng, torch.cuda.get_rng_state() if device == "cuda" else torch.get_rng_state())
    for opt in (opt_g, opt_d):   # fresh Adam state: zero moments, step 0
        assert all(float(t.abs().sum()) == 0 for st in opt.state.values() for t in st.values())


def test_fast_steps_other_batch_shape_runs_eagerly(device):
    G, D, opt_g, opt_d, noise, loss = _setup(device)
    reals = _batches(1, device)[0]
    d_fn, g_fn = fast_steps(G, D, opt_g, opt_d, noise, loss, reals, verbose=False)
    loss_d, real_out, fake_out = d_fn(reals[:32], G, D)
    assert real_out.shape == fake_out.shape == (32, 1)
    assert torch.isfinite(g_fn(reals[:32], G, D))
    loss_d, real_out, fake_out = d_fn(reals, G, D)
    assert real_out.shape == (BATCH, 1) and torch.isfinite(g_fn(reals, G, D))


def test_fast_steps_after_load_state_dict_must_recapture(device):
    """optimizer.load_state_dict (the NaN guard's restore) replaces the state tensors that the
    graphs update: the steps raise, and calling fast_steps again re-captures. Eager (CPU) steps
    have nothing to re-capture and go on."""
    G, D, opt_g, opt_d, noise, loss = _setup(device)
    real = _batches(1, device)[0]
    d_fn, g_fn = fast_steps(G, D, opt_g, opt_d, noise, loss, real, verbose=False)
    d_fn(real, G, D), g_fn(real, G, D)
    opt_d.load_state_dict(copy.deepcopy(opt_d.state_dict()))   # what the NaN guard's restore does
    if device == "cuda":
        with pytest.raises(RuntimeError, match="call fast_steps again"):
            d_fn(real, G, D)
        d_fn, g_fn = fast_steps(G, D, opt_g, opt_d, noise, loss, real, verbose=False)
    d_fn(real, G, D)
    assert torch.isfinite(g_fn(real, G, D))
    for group in opt_g.param_groups:   # a new learning rate is not in the captured graph either
        group["lr"] = 1e-4
    if device == "cuda":
        with pytest.raises(RuntimeError, match="call fast_steps again"):
            g_fn(real, G, D)


def test_fast_steps_capture_failure_falls_back_to_eager(device, capsys):
    """A noise function that reads a value back to the host (.item()) cannot be captured: the
    models come back unchanged and training goes on eagerly, with a one-line message."""
    G, D, opt_g, opt_d, _, loss = _setup(device)

    def host_sync_noise(n):
        scale = torch.ones((), device=device).item()   # a host synchronization
        return scale * torch.randn(n, NOISE_DIM, device=device)

    before = [t.clone() for t in G.state_dict().values()]
    real = _batches(1, device)[0]
    d_fn, g_fn = fast_steps(G, D, opt_g, opt_d, host_sync_noise, loss, real)
    out = capsys.readouterr().out
    assert "training eagerly" in out and len(out.strip().splitlines()) == 1
    assert all(torch.equal(a, b) for a, b in zip(before, G.state_dict().values()))
    d_fn(real, G, D)
    assert torch.isfinite(g_fn(real, G, D))


class FakeCuda:
    """torch.cuda as fast.py uses it, on the CPU: a 'capture' runs its block once, eagerly; replay() only counts.
    fail=True: the first capture raises, as a step that reads a value back to the host does on a GPU."""

    def __init__(self, fail=False):
        self.fail, self.replays, self.captures = fail, 0, 0
        self.Stream = lambda device=None: self
        self.current_stream = lambda device=None: self
        self.stream = self.device = lambda _: contextlib.nullcontext()
        self.wait_stream = self.synchronize = self.set_stream = lambda *args: None
        self.get_rng_state = lambda device=None: torch.get_rng_state()
        self.set_rng_state = lambda state, device=None: torch.set_rng_state(state)

    def CUDAGraph(self):
        fake = self

        class Graph:
            def replay(self):
                fake.replays += 1
        return Graph()

    @contextlib.contextmanager
    def graph(self, _):
        if self.fail:
            self.fail = False
            raise RuntimeError("operation not permitted when stream is capturing (fake)")
        self.captures += 1
        yield


@pytest.mark.parametrize("fail", [False, True])
def test_fast_steps_capture_path_with_a_fake_graph(monkeypatch, capsys, fail):
    """The capture code path on the CPU (CUDA faked): a capture reports 'captured', marks the steps captured=True,
    undoes its warm-up steps and replays the graphs for the captured batch shape; a failed capture puts
    everything back, reports 'training eagerly', marks captured=False, and raises under GAN_FAST_STRICT=1."""
    fake = FakeCuda(fail)
    monkeypatch.setattr(gan_utils.fast, "_cuda", fake)
    monkeypatch.setattr(gan_utils.fast, "CAPTURE_DEVICES", ("cpu",))
    G, D, _, _, noise, loss = _setup("cpu")
    opt_g, opt_d = gan_utils.make_optimizer(G, "sgd"), gan_utils.make_optimizer(D, "sgd")   # no capturable on CPU
    before = [copy.deepcopy(m.state_dict()) for m in (G, D)]
    rng = torch.get_rng_state()
    real = _batches(1, "cpu")[0]
    d_fn, g_fn = fast_steps(G, D, opt_g, opt_d, noise, loss, real)
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1 and d_fn.captured is g_fn.captured is (not fail)
    assert ("training eagerly" in out) is fail and ("captured as CUDA graphs" in out) is (not fail)
    for model, state in zip((G, D), before):    # warm-up and capture undone
        assert all(torch.equal(t, state[k]) for k, t in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    out_d, out_g = d_fn(real, G, D), g_fn(real, G, D)
    assert fake.replays == (0 if fail else 2) and fake.captures == (1 if fail else 2)   # a failure: one reset capture
    assert d_fn(real, G, D) is out_d if not fail else torch.isfinite(out_g)
    d_fn(real[:4], G, D)                         # another batch shape: eager, no replay
    assert fake.replays == (0 if fail else 3)
    if fail:
        monkeypatch.setenv("GAN_FAST_STRICT", "1")
        fake.fail = True
        with pytest.raises(RuntimeError, match="fast path: CUDA graph capture failed"):
            fast_steps(G, D, opt_g, opt_d, noise, loss, real)
