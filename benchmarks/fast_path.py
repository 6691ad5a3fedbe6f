"""The fast path on a GPU: ms per G step of eager steps, CUDA graphs and torch.compile.

For the course's MNIST MLP GAN (batch 128, as in train_speed.py) and the 28-px DCGAN of notebook 05
(batch 128, 100-d noise), on random images, this times the step functions alone (one D step and
one G step per G step, no logging), from fresh models with the same seed:

  eager     gan_utils.steps.eager_steps: d_step / g_step (what train_gan runs)
  fast      gan_utils.fast.fast_steps: the two steps captured once as CUDA graphs
  *_cl      the same with the DCGAN and its data in channels_last memory format
  compile   torch.compile(mode="reduce-overhead") of the D step and of the G step (--compile);
            its compile time (the first 3 calls) is reported apart

The variants run interleaved in rounds; medians over the rounds. Then it trains eager and fast
side by side from the same seed and prints how far their losses drift apart: the largest relative
difference over the first 50 G steps (the test asks for <= 1e-3) and over the next ones.

usage: python benchmarks/fast_path.py [--steps 200] [--repeats 3] [--models mlp,dcgan] [--compile]
The capture (3 warm-up steps and recording) is timed once per model and printed.
"""
import argparse
import statistics
import time

import torch

import gan_utils
from gan_utils.fast import fast_steps
from gan_utils.steps import eager_steps

BATCH = 128


def build(model, seed, device, channels_last=False):
    """Fresh (G, D, opt_g, opt_d, noise, loss, reals): 20 random real batches (20, 128, 1, 28, 28)."""
    gan_utils.seed_everything(seed)
    if model == "mlp":
        G, D, dim = gan_utils.MLPGenerator(), gan_utils.MLPDiscriminator(), 64
        reals = torch.rand(20, BATCH, 1, 28, 28, device=device)
    else:
        G, D, dim = gan_utils.DCGANGenerator(), gan_utils.DCGANDiscriminator(), 100
        reals = torch.rand(20, BATCH, 1, 28, 28, device=device) * 2 - 1
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    G, D = G.to(device, memory_format=fmt), D.to(device, memory_format=fmt)
    reals = [r.contiguous(memory_format=fmt) for r in reals] if channels_last else reals
    opt_g, opt_d = gan_utils.make_optimizer(G), gan_utils.make_optimizer(D)
    return G, D, opt_g, opt_d, gan_utils.make_noise(dim, device=device), gan_utils.get_loss("nonsaturating"), reals


def step_fns(variant, G, D, opt_g, opt_d, noise, loss, reals):
    """(d_fn, g_fn, setup seconds) of a variant; d_fn(real), g_fn(real)."""
    start = time.perf_counter()
    if variant == "compile":
        d_c = torch.compile(lambda real: gan_utils.d_step(G, D, opt_d, real, noise, loss), mode="reduce-overhead")
        g_c = torch.compile(lambda real: gan_utils.g_step(G, D, opt_g, real, noise, loss), mode="reduce-overhead")

        def d_fn(real):   # each call is a new step for the compiled CUDA graphs
            torch.compiler.cudagraph_mark_step_begin()
            return [t.clone() for t in d_c(real)]

        def g_fn(real):
            torch.compiler.cudagraph_mark_step_begin()
            return g_c(real).clone()

        for real in reals[:3]:   # compilation happens in the first calls
            d_fn(real), g_fn(real)
    else:   # train_gan's step functions take (real, G, D)
        steps = fast_steps(G, D, opt_g, opt_d, noise, loss, reals[0], verbose=False) if variant.startswith("fast") \
            else eager_steps(G, D, opt_g, opt_d, noise, loss)
        d_fn, g_fn = (lambda real, fn=fn: fn(real, G, D) for fn in steps)
    sync()
    return d_fn, g_fn, time.perf_counter() - start


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def ms_per_step(d_fn, g_fn, reals, steps):
    sync()
    start = time.perf_counter()
    for i in range(steps):
        real = reals[i % len(reals)]
        d_fn(real)
        g_fn(real)
    sync()
    return 1000 * (time.perf_counter() - start) / steps


def speed(model, variants, steps, repeats, seed, device):
    ms, setup = {v: [] for v in variants}, {}
    for r in range(repeats + 1):   # round 0: warm-up
        for v in variants:
            G, D, opt_g, opt_d, noise, loss, reals = build(model, seed, device, channels_last=v.endswith("_cl"))
            d_fn, g_fn, setup[v] = step_fns(v, G, D, opt_g, opt_d, noise, loss, reals)
            value = ms_per_step(d_fn, g_fn, reals, steps)
            if r > 0:
                ms[v].append(value)
    base = statistics.median(ms["eager"])
    for v, values in ms.items():
        med = statistics.median(values)
        print(f"{model:<6}{v:<10}{med:9.3f} ms/step  (min {min(values):.3f}, max {max(values):.3f})  "
              f"eager/this {base / med:6.2f}  setup {setup[v]:.2f} s", flush=True)
    return {v: statistics.median(x) for v, x in ms.items()}


def agreement(model, steps, seed, device):
    """Largest relative difference of (loss_d, loss_g) between eager and fast, first 50 steps and after."""
    rows = {}
    for v in ("eager", "fast"):
        G, D, opt_g, opt_d, noise, loss, reals = build(model, seed, device)
        d_fn, g_fn, _ = step_fns(v, G, D, opt_g, opt_d, noise, loss, reals)
        out = []
        for i in range(steps):
            loss_d, _, _ = d_fn(reals[i % len(reals)])
            out.append(torch.stack([loss_d, g_fn(reals[i % len(reals)])]))
        rows[v] = torch.stack(out).double().cpu()
    rel = ((rows["fast"] - rows["eager"]).abs() / rows["eager"].abs().clamp_min(1e-6)).max(1).values
    late = f"{float(rel[50:].max()):.2e}" if steps > 50 else "-"
    print(f"{model:<6}losses fast vs eager: max relative difference steps 1-50 {float(rel[:50].max()):.2e}, "
          f"steps 51-{steps} {late}; first row eager {rows['eager'][0].tolist()} fast {rows['fast'][0].tolist()}",
          flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", default="mlp,dcgan")
    p.add_argument("--compile", action="store_true", help="also torch.compile(mode='reduce-overhead')")
    p.add_argument("--only-compile", action="store_true", help="eager and compile only, no agreement")
    p.add_argument("--agree-steps", type=int, default=200, help="G steps of the loss comparison")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda", help="cuda (cpu only to try the script: fast is eager there)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, {args.steps} steps x {args.repeats} rounds")
    for model in args.models.split(","):
        variants = ["eager"] if args.only_compile else ["eager", "fast"]
        if model == "dcgan" and not args.only_compile:
            variants += ["eager_cl", "fast_cl"]
        if args.compile or args.only_compile:
            variants.append("compile")
        speed(model, variants, args.steps, args.repeats, args.seed, device)
        if not args.only_compile:
            agreement(model, args.agree_steps, args.seed, device)


if __name__ == "__main__":
    main()
