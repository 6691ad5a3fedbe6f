"""Which Adam is fastest for the course's MNIST MLP GAN on this machine: default, foreach or fused?

The GAN of train_speed.py (MLPGenerator(), MLPDiscriminator(), batch 128, 64-d noise, Adam lr
2e-4 betas (0.5, 0.999), non-saturating loss) runs `gan_utils.d_step` + `gan_utils.g_step` on
random images, with the optimizers built three ways:

  default   torch.optim.Adam(...)                 (on a CPU: the per-parameter for-loop)
  foreach   torch.optim.Adam(..., foreach=True)   (one multi-tensor op per update formula)
  fused     torch.optim.Adam(..., fused=True)     (one fused kernel per parameter group)

The variants run interleaved in rounds in one process; the script prints the median ms per
(D step + G step) of each and its ratio to the default. Only the optimizer differs, so the
difference is the optimizer's own time. Timings on a shared 2-core machine are indicative only.

Usage:  python benchmarks/adam_cpu.py [--steps 60] [--repeats 7] [--threads 1] [--device cpu]
"""
import argparse
import statistics
import time

import torch

import gan_utils

VARIANTS = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def run(kwargs, steps, device, seed=0):
    """(wall ms, CPU ms of this process) per step of `steps` (d_step, g_step) pairs with Adam(**kwargs)."""
    gan_utils.seed_everything(seed)
    G, D = gan_utils.MLPGenerator().to(device), gan_utils.MLPDiscriminator().to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), **kwargs)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), **kwargs)
    noise, loss = gan_utils.make_noise(64, device=device), gan_utils.get_loss("nonsaturating")
    real = torch.rand(128, 1, 28, 28, device=device)
    for i in range(steps + 3):
        if i == 3:                                   # 3 warm-up steps create Adam's state
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, cpu_start = time.perf_counter(), time.process_time()
        gan_utils.d_step(G, D, opt_d, real, noise, loss)
        gan_utils.g_step(G, D, opt_g, real, noise, loss)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / steps, 1000 * (time.process_time() - cpu_start) / steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} thread(s), "
          f"{args.steps} steps x {args.repeats} rounds")
    ms = {name: [] for name in VARIANTS}       # wall ms per step, one value per round
    cpu = {name: [] for name in VARIANTS}      # CPU ms per step: less disturbed by other processes
    for r in range(args.repeats):
        for name, kwargs in VARIANTS.items():
            wall, cpu_ms = run(kwargs, args.steps, device)
            ms[name].append(wall)
            cpu[name].append(cpu_ms)
        print(f"round {r + 1}: " + "  ".join(f"{n} {ms[n][-1]:6.2f} (CPU {cpu[n][-1]:6.2f})" for n in ms)
              + "  ms/step", flush=True)
    for name in VARIANTS:
        med, cpu_med = statistics.median(ms[name]), statistics.median(cpu[name])
        paired = statistics.median(v / d for v, d in zip(ms[name], ms["default"]))
        print(f"{name:<8} median {med:7.2f} ms/step (min {min(ms[name]):7.2f}), vs default {med / statistics.median(ms['default']):.3f} "
              f"(per-round median {paired:.3f}); CPU {cpu_med:7.2f} ms/step, vs default "
              f"{cpu_med / statistics.median(cpu['default']):.3f}")


if __name__ == "__main__":
    main()
