"""How much faster is seed batching than a Python loop over seeds? The toy GAN of notebook 04.

The toy GAN (gan_utils.lessons.seeds.toy_models: G 2 -> 128 -> 128 -> 128 -> 2 ReLU, D three hidden
layers of 128 with LeakyReLU 0.2), batch 256, Adam 1e-3 betas (0.5, 0.999), non-saturating loss,
on the 8-mode ring, for --seeds seeds of --steps G steps each, two ways:

  loop     for each seed: its own G and D (nn.Modules), the course's d_step and g_step, data and
           noise from the seed's torch.Generator (a lone run, as the tests define it)
  batched  gan_utils.lessons.seeds.train_toy_seeds: all seeds stacked into one BatchedMLP, one baddbmm per layer

First it checks that both give the same generators after 15 steps, to a tenth of one Adam step
(atol 1e-4, lr 1e-3): Adam's step lr m / sqrt(v) turns the last-bit difference between a batched
and a plain matrix product into a visible one where a gradient is a sum that nearly cancels, and
over hundreds of steps GAN training amplifies it; the runs then differ as two seeds would
(tests/test_stabilize.py checks the same). Then the two
run interleaved in rounds (loop, batched, loop, batched, ...); the script prints ms per G step of
all seeds together, the medians, and last   speedup=<median loop / median batched>   (target >= 4
at 8 seeds). On the CPU it also profiles a short batched run and prints the time of its matrix
products alone: the loop's time over that is a bound no batching can beat on this machine.

Usage (from the repository root):
    python benchmarks/seed_batching.py                       # 8 seeds x 200 steps x 3 rounds, 1 thread
    python benchmarks/seed_batching.py --seeds 16 --steps 100 --repeats 5 --threads 2
This is a benchmark, not a test: on a shared machine absolute times are noisy, the ratio less so.
"""
import argparse
import platform
import statistics
import time

import torch

import gan_utils as gu
from gan_utils.lessons import seeds


def train_loop(seed_ids, steps, batch_size, centers, std, device):
    """Each seed alone, one after the other. Returns the trained generators."""
    sample, loss, Gs = seeds.mixture_sampler(centers, std), gu.get_loss("nonsaturating"), []
    for s in seed_ids:
        G, D = seeds.toy_models(s, device)
        gen = torch.Generator(device=device).manual_seed(s)
        opt_g = gu.make_optimizer(G, "adam", 1e-3, betas=(0.5, 0.999))
        opt_d = gu.make_optimizer(D, "adam", 1e-3, betas=(0.5, 0.999))
        noise = lambda n, gen=gen: torch.randn(n, 2, generator=gen, device=device)  # noqa: E731
        for _ in range(steps):
            real = sample(batch_size, gen)
            gu.d_step(G, D, opt_d, real, noise, loss)
            gu.g_step(G, D, opt_g, real, noise, loss)
        Gs.append(G)
    return Gs


def train_batched(seed_ids, steps, batch_size, centers, std, device):
    return seeds.train_toy_seeds(seed_ids, centers, std, steps, device=device, batch_size=batch_size)[0]


def timed(fn, device, *args):
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn(*args, device)
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seed_ids, centers = list(range(args.seeds)), gu.ring_centers(8)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), "
          f"device {args.device}; {args.seeds} seeds x {args.steps} G steps, batch {args.batch_size}")
    G_loop = train_loop(seed_ids, 15, args.batch_size, centers, 0.02, args.device)
    G_batch = train_batched(seed_ids, 15, args.batch_size, centers, 0.02, args.device)
    same = all(torch.allclose(a, b, rtol=1e-4, atol=1e-4)
               for Ga, Gb in zip(G_loop, G_batch) for a, b in zip(Ga.parameters(), Gb.parameters()))
    print(f"after 15 steps the loop and the batched generators are allclose: {same}")
    times = {"loop": [], "batched": []}
    for r in range(args.repeats):
        _, t_loop = timed(train_loop, args.device, seed_ids, args.steps, args.batch_size, centers, 0.02)
        _, t_batch = timed(train_batched, args.device, seed_ids, args.steps, args.batch_size, centers, 0.02)
        for name, t in (("loop", t_loop), ("batched", t_batch)):
            times[name].append(1000 * t / args.steps)
        print(f"round {r + 1}: loop {times['loop'][-1]:.1f} ms/step, batched {times['batched'][-1]:.1f} ms/step, "
              f"ratio {t_loop / t_batch:.2f}")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median ms per G step (all {args.seeds} seeds): loop {med['loop']:.1f}, batched {med['batched']:.1f}")
    if args.device == "cpu":
        products = product_ms(seed_ids, min(args.steps, 50), args.batch_size, centers)
        print(f"matrix products alone, batched: {products:.1f} ms/step (torch.profiler): with every other "
              f"operation free, batching would reach at most bound={med['loop'] / products:.2f}x here")
    print(f"speedup={med['loop'] / med['batched']:.2f}")


def product_ms(seed_ids, steps, batch_size, centers):
    """ms per G step that the batched run spends in matrix products (bmm, baddbmm, mm, addmm),
    the work no implementation can skip: the loop's time over it bounds any batching's gain."""
    from torch.profiler import profile
    with profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        train_batched(seed_ids, steps, batch_size, centers, 0.02, "cpu")
    us = sum(e.self_cpu_time_total for e in prof.key_averages()
             if e.key in ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm"))
    return us / 1000 / steps


if __name__ == "__main__":
    main()
