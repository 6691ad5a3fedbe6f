"""A GPU fast path: `d_step` and `g_step` captured once as CUDA graphs, each later step one `graph.replay()` (the real
batch copied into a static buffer, the noise drawn inside the graph as eager draws it, static outputs overwritten by
the next replay, optimizers with capturable=True). The lr and the optimizers' state tensors are fixed at capture:
after load_state_dict (a NaN-guard restore, a resume) or a new lr the steps raise; call `fast_steps` again. On a CPU,
or when capture fails, the eager steps with a one-line message (d_fn.captured False; GAN_FAST_STRICT=1: a failed
capture raises). `_cuda` and CAPTURE_DEVICES are the seam the CPU tests fake a capture through."""
import copy
import os
import time

import torch

from .losses import get_loss
from .steps import d_step, eager_steps, g_step

_cuda, CAPTURE_DEVICES = torch.cuda, ("cuda",)
STALE = ("the optimizers' state or learning rate changed after the CUDA graphs were captured "
         "(load_state_dict, a NaN-guard restore, a resume, a new lr): call fast_steps again to re-capture")


def fast_steps(G, D, opt_g, opt_d, noise, loss, real_example, verbose=True):
    """The D and G steps of `train_gan` as CUDA graphs on a GPU, else eager. Arguments as for `steps.eager_steps`; loss:
    a GANLoss or a name; real_example: one real minibatch (m, ...) on the device (fixes the shape). Returns (d_fn,
    g_fn): d_fn(real, G, D) -> (loss_d, real_out (m, 1), fake_out (m, 1)), g_fn(real, G, D) -> loss_g, detached (on CUDA
    reused by the next call); other batch shapes run eagerly. The warm-up steps are undone (models, optimizers, RNG)."""
    loss = get_loss(loss) if isinstance(loss, str) else loss
    device = next(D.parameters()).device
    if device.type not in CAPTURE_DEVICES:
        return _eager(G, D, opt_g, opt_d, noise, loss, verbose, f"no CUDA graphs on {device.type}")
    if not torch.is_tensor(real_example):
        return _eager(G, D, opt_g, opt_d, noise, loss, verbose,
                      "(images, labels) batches of a conditional GAN are not captured")
    saved = (*(copy.deepcopy(obj.state_dict()) for obj in (G, D, opt_g, opt_d)), _cuda.get_rng_state(device))
    start, stream = time.perf_counter(), _cuda.current_stream(device)
    try:
        steps = _capture(G, D, opt_g, opt_d, noise, loss, real_example.to(device), saved)
    except Exception as exc:   # any failure: back to the caller's stream, everything put back, train eagerly
        _cuda.set_stream(stream)
        _cuda.synchronize(device)
        with _cuda.device(device), _cuda.graph(_cuda.CUDAGraph()):   # one tiny capture resets the RNG's capture mode
            torch.zeros(1, device=device)
        for obj, state in zip((G, D, opt_g, opt_d), saved[:4]):
            obj.load_state_dict(state)
        _cuda.set_rng_state(saved[4], device)
        why = f"CUDA graph capture failed ({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:120]})"
        if os.environ.get("GAN_FAST_STRICT") == "1":
            raise RuntimeError(f"fast path: {why}") from exc
        return _eager(G, D, opt_g, opt_d, noise, loss, verbose, why)
    if verbose:
        print(f"fast path: D and G steps captured as CUDA graphs ({time.perf_counter() - start:.1f} s)")
    return steps


def _eager(G, D, opt_g, opt_d, noise, loss, verbose, why):
    """The eager steps, marked not captured, with a one-line message saying why."""
    steps = eager_steps(G, D, opt_g, opt_d, noise, loss)
    steps[0].captured = steps[1].captured = False
    if verbose:
        print(f"fast path: {why}; training eagerly with d_step/g_step")
    return steps


@torch.no_grad()
def _restore_in_place(G, D, opt_g, opt_d, saved, device):
    """Copy the snapshot into the existing tensors (the graphs hold them); state the warm-up created is zeroed."""
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
    _cuda.set_rng_state(saved[4], device)


def _make_capturable(opt):
    """capturable=True where the optimizer has it; CPU step counters move to the GPU."""
    for group in opt.param_groups:
        if "capturable" in group:
            group["capturable"] = True
        for p in group["params"]:
            step = opt.state.get(p, {}).get("step")
            if torch.is_tensor(step) and step.device != p.device:
                opt.state[p]["step"] = step.to(p.device)


def _staleness_check(*opts):
    """A function raising RuntimeError(STALE) once an optimizer's state tensors (one parameter's) or lr changed."""
    watched = [(opt, p, dict(opt.state[p]), [g["lr"] for g in opt.param_groups])
               for opt in opts for p in list(opt.state)[:1]]
    def check():
        for opt, p, tensors, lrs in watched:
            if (any(opt.state[p].get(k) is not t for k, t in tensors.items())
                    or [g["lr"] for g in opt.param_groups] != lrs):
                raise RuntimeError(STALE)
    return check


def _capture(G, D, opt_g, opt_d, noise, loss, real_example, saved, warmup=3):
    """Warm up, capture d_step and g_step as two CUDA graphs, restore the snapshot; return (d_fn, g_fn)."""
    device = real_example.device
    _make_capturable(opt_g), _make_capturable(opt_d)
    static_real = real_example.detach().clone()
    side = _cuda.Stream(device)
    side.wait_stream(_cuda.current_stream(device))
    with _cuda.stream(side):   # warm-up: cuBLAS handles, autograd, the optimizers' state
        for _ in range(warmup):
            d_step(G, D, opt_d, static_real, noise, loss)
            g_step(G, D, opt_g, static_real, noise, loss)
    _cuda.current_stream(device).wait_stream(side)
    for p in (*G.parameters(), *D.parameters()):   # the graphs allocate their own gradients
        p.grad = None
    graph_d, graph_g = _cuda.CUDAGraph(), _cuda.CUDAGraph()
    with _cuda.graph(graph_d):
        out_d = d_step(G, D, opt_d, static_real, noise, loss)
    with _cuda.graph(graph_g):
        out_g = g_step(G, D, opt_g, static_real, noise, loss)
    _restore_in_place(G, D, opt_g, opt_d, saved, device)
    check = _staleness_check(opt_g, opt_d)
    def replay(step, opt, graph, out):
        def step_fn(real, G_batch, D_batch):
            if real.shape != static_real.shape or G_batch is not G or D_batch is not D:
                return step(G_batch, D_batch, opt, real, noise, loss)   # another batch: eagerly
            check()
            static_real.copy_(real)   # g_step reads it only for losses that use real data (feature matching)
            graph.replay()
            return out
        step_fn.captured = True
        return step_fn
    return replay(d_step, opt_d, graph_d, out_d), replay(g_step, opt_g, graph_g, out_g)
