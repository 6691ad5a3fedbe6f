"""A fast path for training on a GPU: the D step and the G step captured once as CUDA graphs.

A training step of the course's small GANs is a few hundred small kernels; on a GPU the time goes
into launching them from Python, not into the arithmetic. `fast_steps` runs `train.d_step` and
`train.g_step` once each under `torch.cuda.graph`, which records their kernels; every later step
is one `graph.replay()`, a single launch. What changes between steps lives in fixed tensors:

- the real batch is copied into a static input buffer before each replay;
- the noise is drawn inside the graph (CUDA graphs advance the random generator at each replay,
  so a replay draws the same numbers as the eager step with the same seed would);
- the outputs (loss_d, real_out, fake_out) and loss_g are static tensors, overwritten by the next
  replay: copy them (`torch.stack` does) before the next step;
- the optimizers run with `capturable=True` (Adam's step counter stays on the GPU).

The learning rate and the optimizers' state tensors are fixed at capture. `optimizer.load_state_dict`
(the NaN guard's restore, a resume) replaces the state tensors, so the graphs would update stale
ones: the step functions detect this and raise; call `fast_steps` again to re-capture (one call,
well under a second). The same holds after changing a learning rate.

On a CPU, or when capture fails (a noise function that builds on the CPU, a loss that syncs with
the host), `fast_steps` returns the eager `d_step`/`g_step` with a one-line message.
"""
import copy
import time

import torch

from .losses import get_losses
from .train import d_step, g_step

STALE = ("the optimizers' state or learning rate changed after the CUDA graphs were captured "
         "(load_state_dict, a NaN-guard restore, a resume, a new lr): call fast_steps again to re-capture")


def fast_steps(G, D, opt_g, opt_d, noise, loss, real_example, clip_value=None, verbose=True):
    """The D step and the G step of `train_gan`, as CUDA graphs on a GPU, else eager.

    Arguments as for `train.d_step` / `train.g_step`; loss: a GANLoss or a loss name;
    real_example: one real minibatch (m, ...) on the training device, which fixes the batch shape.
    Returns (d_fn, g_fn) with the contract of d_step / g_step:
        d_fn(real) -> (loss_d, real_out, fake_out)   scalar, (m, 1), (m, 1), detached
        g_fn(real) -> loss_g                          scalar, detached
    A batch of another shape runs eagerly. On CUDA the returned tensors are reused by the next
    call. Capture runs 3 warm-up steps on a side stream, then puts G, D, the optimizers and the
    random generator back where they were, so training starts from the same state as eager.
    """
    loss = get_losses(loss) if isinstance(loss, str) else loss
    eager = (lambda real: d_step(G, D, opt_d, real, noise, loss, clip_value),
             lambda real: g_step(G, D, opt_g, real, noise, loss))
    device = next(D.parameters()).device
    if device.type != "cuda":
        _say(verbose, f"fast path: no CUDA graphs on {device.type}; training eagerly with d_step/g_step")
        return eager
    if not torch.is_tensor(real_example):
        _say(verbose, "fast path: (images, labels) batches of a conditional GAN are not captured; "
                      "training eagerly with d_step/g_step")
        return eager
    saved = _snapshot(G, D, opt_g, opt_d, device)
    start, stream = time.perf_counter(), torch.cuda.current_stream(device)
    try:
        steps = _capture(G, D, opt_g, opt_d, noise, loss, real_example.to(device), clip_value, saved)
    except Exception as exc:   # any failure: put everything back and train eagerly
        _end_failed_capture(stream, device)
        for obj, state in zip((G, D, opt_g, opt_d), saved[:4]):
            obj.load_state_dict(state)
        torch.cuda.set_rng_state(saved[4], device)
        first_line = (str(exc).strip().splitlines() or [""])[0][:120]
        _say(verbose, f"fast path: CUDA graph capture failed ({type(exc).__name__}: {first_line}); "
                      f"training eagerly with d_step/g_step")
        return eager
    _say(verbose, f"fast path: D and G steps captured as CUDA graphs ({time.perf_counter() - start:.1f} s)")
    return steps


def _say(verbose, message):
    if verbose:
        print(message)


def _end_failed_capture(stream, device):
    """A capture that fails (e.g. on a host sync) stops before it tells the random generator that
    capture is over (the next eager randn would raise) and leaves its side stream current. Go back
    to the caller's stream and run one tiny capture: its end resets the generator's capture mode."""
    torch.cuda.set_stream(stream)
    torch.cuda.synchronize(device)
    with torch.cuda.device(device), torch.cuda.graph(torch.cuda.CUDAGraph()):
        torch.zeros(1, device=device)


def _snapshot(G, D, opt_g, opt_d, device):
    """Copies of everything a warm-up step changes: (G, D, opt_g, opt_d state dicts, CUDA RNG state)."""
    return (*(copy.deepcopy(obj.state_dict()) for obj in (G, D, opt_g, opt_d)),
            torch.cuda.get_rng_state(device))


@torch.no_grad()
def _restore_in_place(G, D, opt_g, opt_d, saved, device):
    """Put back the snapshot by copying into the existing tensors (the graphs hold their addresses).
    Optimizer state that the warm-up created is zeroed: Adam's and RMSprop's fresh state."""
    for model, state in ((G, saved[0]), (D, saved[1])):
        for name, tensor in model.state_dict().items():
            tensor.copy_(state[name])
    for opt, state in ((opt_g, saved[2]), (opt_d, saved[3])):
        params = [p for group in opt.param_groups for p in group["params"]]
        for i, p in enumerate(params):
            old = state["state"].get(i, {})
            for key, tensor in opt.state[p].items():
                if torch.is_tensor(tensor):
                    tensor.copy_(old[key]) if key in old else tensor.zero_()
    torch.cuda.set_rng_state(saved[4], device)


def _make_capturable(opt):
    """capturable=True where the optimizer has it (Adam, AdamW, RMSprop, ...): the step counter
    stays on the GPU, so a step needs no host sync. Existing CPU step counters move there too."""
    for group in opt.param_groups:
        if "capturable" in group:
            group["capturable"] = True
        for p in group["params"]:
            step = opt.state.get(p, {}).get("step")
            if torch.is_tensor(step) and step.device != p.device:
                opt.state[p]["step"] = step.to(p.device)


def _staleness_check(*opts):
    """A function that raises RuntimeError(STALE) once the graphs would update stale tensors: they
    write into the optimizers' state tensors and use the lr of capture time. load_state_dict
    replaces all state tensors at once, so watching one parameter's suffices."""
    watched = [(opt, p, dict(opt.state[p]), [g["lr"] for g in opt.param_groups])
               for opt in opts for p in list(opt.state)[:1]]

    def check():
        for opt, p, tensors, lrs in watched:
            if (any(opt.state[p].get(k) is not t for k, t in tensors.items())
                    or [g["lr"] for g in opt.param_groups] != lrs):
                raise RuntimeError(STALE)

    return check


def _capture(G, D, opt_g, opt_d, noise, loss, real_example, clip_value, saved, warmup=3):
    """Warm up, capture d_step and g_step as two CUDA graphs, restore the snapshot; return (d_fn, g_fn)."""
    device = real_example.device
    _make_capturable(opt_g), _make_capturable(opt_d)
    static_real = real_example.detach().clone()
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):   # warm-up: cuBLAS handles, autograd, the optimizers' state
        for _ in range(warmup):
            d_step(G, D, opt_d, static_real, noise, loss, clip_value)
            g_step(G, D, opt_g, static_real, noise, loss)
    torch.cuda.current_stream(device).wait_stream(side)
    for p in (*G.parameters(), *D.parameters()):   # the graphs allocate their own gradients
        p.grad = None
    graph_d, graph_g = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph_d):
        out_d = d_step(G, D, opt_d, static_real, noise, loss, clip_value)
    with torch.cuda.graph(graph_g):
        out_g = g_step(G, D, opt_g, static_real, noise, loss)
    _restore_in_place(G, D, opt_g, opt_d, saved, device)
    check = _staleness_check(opt_g, opt_d)

    def d_fn(real):
        if real.shape != static_real.shape:
            return d_step(G, D, opt_d, real, noise, loss, clip_value)
        check()
        static_real.copy_(real)
        graph_d.replay()
        return out_d

    def g_fn(real):
        if real.shape != static_real.shape:
            return g_step(G, D, opt_g, real, noise, loss)
        check()
        static_real.copy_(real)   # read only by losses that use real data (feature matching)
        graph_g.replay()
        return out_g

    return d_fn, g_fn
