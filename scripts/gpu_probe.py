"""The GPU check's probe (issue 27): what the notebooks cannot show, asserted. Exits non-zero on any failure.

  1. capture: fast.fast_steps captures every model and loss the notebooks train (d_fn.captured; no "training
     eagerly" line), except a conditional GAN's (image, label) batches, which train eagerly by design;
  2. agreement: 20 steps of the fast path against eager steps (Adam capturable=True, the graphs' arithmetic):
     every loss and D output within rtol 5e-3, atol 1e-4 (rounding, amplified by training, grows past 1e-3
     by step 50 on an H100: tests/test_fast.py);
  3. dcgan_run(fast=True): a run interrupted at its 3rd scoring resumes, finishes, and reloads without training;
  4. its fast checkpoint loads into CPU models and optimizers and takes a CPU step;
  5. host syncs per step: one D and one G step of each captured and eager step function under
     torch.cuda.set_sync_debug_mode("error") (a sync raises), after a warm-up.
--dry-run: all of it on the CPU at toy sizes (no capture expected, eager == fast bitwise), the CI smoke test."""
import argparse
import contextlib
import io
import sys
import tempfile
import time

import torch
from torch import nn

import gan_utils as gu
from gan_utils.classifier import MNISTClassifier
from gan_utils.fast import fast_steps
from gan_utils.lessons import dcgan, seeds
from gan_utils.losses import hinge_loss, r1_loss, wgan_gp_loss, wgan_loss
from gan_utils.steps import d_step, eager_steps, g_step

RTOL, ATOL, STEPS = 5e-3, 1e-4, 20
LOSSES = {"nonsaturating": "nonsaturating", "saturating": "saturating", "feature_matching": "feature_matching",
          "wgan clip": wgan_loss(0.01), "wgan_gp": wgan_gp_loss(10.0), "r1": r1_loss(10.0), "hinge": hinge_loss()}
FAILURES = []


def check(ok, what):
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        FAILURES.append(what)


def models(kind, device):
    """(G, D, noise_dim, batch shape) of a model family the notebooks train."""
    gu.seed_everything(0)
    if kind == "mlp":
        return gu.MLPGenerator(noise_dim=64).to(device), gu.MLPDiscriminator().to(device), 64, (1, 28, 28)
    width, upsample = {"dcgan w16": (16, False), "dcgan upsample": (16, True), "dcgan w32": (32, False)}[kind]
    G, D, _, _ = dcgan.dcgan(64, width, upsample, device=device)
    return G, D, 64, (1, 28, 28)


def run_steps(kind, loss, fast, device, batch):
    G, D, noise_dim, shape = models(kind, device)
    opt_g, opt_d = gu.make_optimizer(G), gu.make_optimizer(D)
    noise = gu.make_noise(noise_dim, device=device)
    reals = torch.rand(STEPS, batch, *shape, generator=torch.Generator().manual_seed(1)).to(device)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if fast:
            d_fn, g_fn = fast_steps(G, D, opt_g, opt_d, noise, loss, reals[0])
        else:
            for group in (*opt_g.param_groups, *opt_d.param_groups):
                group["capturable"] = device.type == "cuda"
            d_fn, g_fn = eager_steps(G, D, opt_g, opt_d, noise, gu.get_loss(loss) if isinstance(loss, str) else loss)
    rows = []
    for real in reals:
        loss_d, real_out, fake_out = d_fn(real, G, D)
        rows.append(torch.stack([loss_d, g_fn(real, G, D), real_out.mean(), fake_out.mean()]))
    return torch.stack(rows).cpu(), getattr(d_fn, "captured", False), out.getvalue(), (G, D, opt_g, opt_d, d_fn, g_fn)


def probe_capture_and_agreement(device, batch, kinds, names=tuple(LOSSES)):
    for kind in kinds:
        for name, loss in ((name, LOSSES[name]) for name in names):
            if kind != "mlp" and name in ("wgan_gp", "r1"):
                continue                     # BatchNorm in the DCGAN D: the per-example penalties do not apply
            t0 = time.perf_counter()
            fast, captured, said, _ = run_steps(kind, loss, True, device, batch)
            eager, _, _, _ = run_steps(kind, loss, False, device, batch)
            if device.type == "cuda":
                check(captured and "training eagerly" not in said, f"capture {kind} {name}: {said.strip()}")
                close = torch.allclose(fast, eager, rtol=RTOL, atol=ATOL)
            else:
                close = torch.equal(fast, eager)
            gap = ((fast - eager).abs() / (eager.abs() + ATOL)).max().item()
            check(close, f"agreement {kind} {name}: {STEPS} steps, max relative gap {gap:.1e} "
                         f"({time.perf_counter() - t0:.1f} s)")


def probe_dcgan_run(device, n_train, folder):
    """dcgan_run(fast=True): interrupted at its 3rd scoring (after epoch 2 of 3), resumed, finished, reloaded;
    the fast checkpoint loaded into CPU models and stepped there."""
    gen = torch.Generator().manual_seed(0)
    split = {"protocol": "probe", "dataset": "mnist", "x_train": torch.rand(n_train, 1, 28, 28, generator=gen),
             "y_train": torch.randint(0, 10, (n_train,), generator=gen), "x_valid": torch.rand(1000, 1, 28, 28)}
    classifier = MNISTClassifier().to(device).eval()
    scores, real_scores = [0], dcgan.generator_scores

    def interrupting(*args, **kwargs):
        scores[0] += 1
        if scores[0] == 3:
            raise KeyboardInterrupt
        return real_scores(*args, **kwargs)
    kwargs = dict(epochs=3, name="probe", classifier=classifier, device=device, progress=False, folder=folder,
                  fast=True)
    dcgan.generator_scores = interrupting
    try:
        dcgan.dcgan_run(split, **kwargs)
        check(False, "dcgan_run(fast=True): the interrupt did not stop the run")
    except KeyboardInterrupt:
        check(True, "dcgan_run(fast=True): interrupted in epoch 2")
    finally:
        dcgan.generator_scores = real_scores
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        G, D, watcher, history = dcgan.dcgan_run(split, **kwargs)
    said, steps = out.getvalue(), 3 * (n_train // 128)
    check(history["step"][-1] == steps and "training eagerly" not in said or device.type != "cuda",
          f"dcgan_run(fast=True) resumed to {history['step'][-1]} of {steps} G steps: {said.strip()[:300]}")
    with contextlib.redirect_stdout(io.StringIO()):
        G2, _, _, history2 = dcgan.dcgan_run(split, **kwargs)
    same = all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values()))
    check(same and history2["step"] == history["step"], "dcgan_run(fast=True) reloads the finished run unchanged")
    path = next(p for p in __import__("pathlib").Path(folder).glob("probe-*.pt") if p.suffixes == [".pt"])
    Gc, Dc, opt_g, opt_d = dcgan.dcgan(64, 16, device="cpu")
    gu.checkpoints.load_checkpoint(path, Gc, Dc, opt_g, opt_d)
    noise = gu.make_noise(64)
    loss_d, _, _ = d_step(Gc, Dc, opt_d, split["x_train"][:128], noise, gu.get_loss())
    loss_g = g_step(Gc, Dc, opt_g, split["x_train"][:128], noise, gu.get_loss())
    check(bool(torch.isfinite(loss_d) and torch.isfinite(loss_g)), f"fast checkpoint {path.name} stepped on the CPU")


def probe_syncs(device, batch):
    """One D and one G step per step function under set_sync_debug_mode('error'): a host sync raises."""
    cases = [("mlp", "nonsaturating", True), ("dcgan w16", "nonsaturating", True), ("mlp", "wgan clip", False)]
    for kind, name, fast in cases:
        _, _, _, (G, D, opt_g, opt_d, d_fn, g_fn) = run_steps(kind, LOSSES[name], fast, device, batch)
        real = torch.rand(batch, 1, 28, 28, device=device)
        syncs = _count_syncs(device, lambda: (d_fn(real, G, D), g_fn(real, G, D)))
        check(syncs == 0, f"host syncs per step, {kind} {name} {'fast' if fast else 'eager'}: {syncs}")
    x = torch.rand(512, 1, 28, 28, device=device)
    data = gu.TensorBatches(x, batch, labels=torch.arange(512, device=device) % 10, n_classes=10)
    G, D, opt_g, opt_d = dcgan.dcgan(64, 16, n_classes=10, device=device)
    real, G_b, D_b = gu.train.with_labels(next(iter(data)), G, D)
    steps = eager_steps(G, D, opt_g, opt_d, gu.make_noise(64, device=device), gu.matching_aware_loss())
    step = lambda: (steps[0](real, G_b, D_b), steps[1](real, G_b, D_b))   # noqa: E731
    step()
    check(_count_syncs(device, step) == 0, "host syncs per step, conditional DCGAN matching-aware eager: 0")
    G, D = (seeds.BatchedMLP([seeds.toy_models(s, device)[i] for s in range(4)], act)
            for i, act in ((0, nn.ReLU()), (1, nn.LeakyReLU(0.2))))
    opt_g, opt_d = seeds.trick_optimizers(G, D, {})
    _, every = seeds._run_settings(G, (opt_g, opt_d), 100, {"ema": 0.999, "lr_decay": True})
    loss, real = seeds.per_seed(gu.get_loss(), 4), torch.randn(4, 64, 2, device=device)
    noise = lambda n: torch.randn(4, 64, 2, device=device)   # noqa: E731
    step = lambda: (d_step(G, D, opt_d, real, noise, loss), g_step(G, D, opt_g, real, noise, loss), every())  # noqa
    step()
    check(_count_syncs(device, step) == 0, "host syncs per step, 4 batched seeds with EMA and lr decay: 0")


def _count_syncs(device, step):
    """0 when `step` runs without a host sync (on CUDA, sync debug mode 'error'); 1 when it raised for one."""
    if device.type != "cuda":
        step()
        return 0
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        return 0
    except RuntimeError as exc:
        print(f"     sync: {str(exc).splitlines()[0][:160]}")
        return 1
    finally:
        torch.cuda.set_sync_debug_mode("default")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, toy sizes (CI's smoke test)")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_probe: no CUDA GPU; use --dry-run for the CPU smoke test")
    device = torch.device("cpu" if args.dry_run else "cuda")
    torch.set_num_threads(min(torch.get_num_threads(), 2)) if args.dry_run else None
    global STEPS
    STEPS = 2 if args.dry_run else STEPS
    batch, t0 = (8 if args.dry_run else 128), time.perf_counter()
    if args.dry_run:
        probe_capture_and_agreement(device, batch, ["mlp", "dcgan upsample"], ["nonsaturating", "r1"])
    else:
        probe_capture_and_agreement(device, batch, ["mlp", "dcgan w16", "dcgan upsample", "dcgan w32"])
    with tempfile.TemporaryDirectory() as folder:
        probe_dcgan_run(device, 256 if args.dry_run else 1024, folder)
    probe_syncs(device, batch)
    print(f"probe: {'all passed' if not FAILURES else f'{len(FAILURES)} FAILED'} in {time.perf_counter() - t0:.0f} s")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
