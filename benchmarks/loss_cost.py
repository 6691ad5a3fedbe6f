"""What does a loss cost per step? The MNIST MLP GAN's step with each loss, against the plain GAN.

The GAN of notebook 03 (MLPGenerator(), MLPDiscriminator(), batch 128, 64-d noise, Adam lr 2e-4
betas (0.5, 0.999)) runs `gan_utils.d_step` + `gan_utils.g_step` with the non-saturating loss (the
baseline) and with each other loss, on the same images, interleaved in rounds (the order flips every
round). It prints ms per (D step + G step) and each loss's per-round ratio to the baseline:

  r1        gu.r1_loss(10): one more backward pass per D step, through D's input gradient
  wgan_gp   gu.wgan_gp_loss(10): the same on interpolated images
  hinge     gu.losses.hinge_loss(): only the formula changes (a control: ratio about 1)

Notebook 03 quotes the R1 ratio. Images: the first batches of MNIST's training split when
$GAN_DATA_DIR holds it, else uniform noise (the cost does not depend on the pixels).

Usage:  python benchmarks/loss_cost.py [--losses r1 hinge] [--steps 150] [--repeats 6] [--threads 2]
"""
import argparse
import statistics
import time

import torch

import gan_utils

LOSSES = {"nonsaturating": lambda: gan_utils.get_loss("nonsaturating"), "r1": lambda: gan_utils.r1_loss(10.0),
          "wgan_gp": lambda: gan_utils.wgan_gp_loss(10.0), "hinge": gan_utils.losses.hinge_loss}


def images(n, device):
    """(n, 1, 28, 28) MNIST training images in [0, 1], or uniform noise without the data."""
    try:
        return gan_utils.mnist.load_images(train=True, limit=n, download=False)[0].to(device)
    except (OSError, RuntimeError, ValueError):
        return torch.rand(n, 1, 28, 28, device=device)


def run(loss_name, x, steps, device, seed=0):
    """Wall ms per (d_step, g_step) over `steps` steps after 5 warm-up steps."""
    gan_utils.seed_everything(seed)
    G, D = gan_utils.MLPGenerator().to(device), gan_utils.MLPDiscriminator().to(device)
    opt_g, opt_d = gan_utils.make_optimizer(G, lr=2e-4), gan_utils.make_optimizer(D, lr=2e-4)
    noise, loss = gan_utils.make_noise(64, device=device), LOSSES[loss_name]()
    batches = len(x) // 128
    for i in range(steps + 5):
        if i == 5:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        real = x[(i % batches) * 128:(i % batches + 1) * 128]
        gan_utils.d_step(G, D, opt_d, real, noise, loss)
        gan_utils.g_step(G, D, opt_g, real, noise, loss)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--losses", nargs="+", default=["r1", "hinge"], choices=[n for n in LOSSES if n != "nonsaturating"])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x = images(100 * 128, device)
    names = ["nonsaturating"] + args.losses
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} thread(s), {len(x)} images, "
          f"{args.steps} steps x {args.repeats} rounds")
    ms = {name: [] for name in names}
    for r in range(args.repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            ms[name].append(run(name, x, args.steps, device))
        print(f"round {r + 1}: " + "  ".join(f"{n} {ms[n][-1]:6.2f}" for n in names) + "  ms/step", flush=True)
    base = ms["nonsaturating"]
    for name in names:
        ratios = [v / b for v, b in zip(ms[name], base)]
        print(f"{name:<14} median {statistics.median(ms[name]):7.2f} ms/step; vs nonsaturating: per-round median "
              f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
