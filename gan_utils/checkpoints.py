"""Save and resume a GAN run: both networks, both optimizers, progress, history and every RNG.

A checkpoint is written to a temporary file of its own in the same folder and then renamed, so a
crash or a second writer never leaves a broken file behind. It carries a SHA-256 checksum of its
content. Loading reads it onto the CPU, checks everything (checksum, shapes, optimizer types,
values, random states) and only then changes the models, the optimizers and the RNGs.
"""
import hashlib
import math
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

FORMAT = 1
KEYS = ("format", "G", "D", "opt_g", "opt_d", "step", "epoch", "history", "rng")
SIGNATURE_KEYS = ("betas", "momentum", "alpha", "dampening")  # tell Adam, SGD and RMSprop apart


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: corrupted, truncated, or made for other models."""


def get_rng_state():
    """Every random state a run uses: Python, NumPy, torch CPU and (if present) CUDA."""
    np_state = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _check_rng_state(state):
    """Raise CheckpointError unless every entry of a `get_rng_state` dict can be restored; the
    check uses fresh generators, so no global random state changes."""
    try:
        random.Random().setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
        name, keys, *rest = state["numpy"]
        np.random.RandomState().set_state((name, np.array(keys, dtype=np.uint32), *rest))
        torch.Generator().set_state(state["torch"])
        cuda = list(state["cuda"])
        if any(not (torch.is_tensor(s) and s.dtype == torch.uint8 and s.ndim == 1) for s in cuda):
            raise TypeError("CUDA states must be 1-d uint8 tensors")
    except Exception as exc:
        raise CheckpointError(f"the checkpoint's random states are damaged ({type(exc).__name__}: {exc}); "
                              f"load it with restore_rng=False, or use another checkpoint") from None


def set_rng_state(state):
    """Restore what `get_rng_state` returned. Saved CUDA states are dropped, with a notice, on a
    machine without CUDA (a run saved on a GPU continues on a CPU)."""
    _check_rng_state(state)
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"].cpu())
    cuda = list(state["cuda"])
    if cuda and not torch.cuda.is_available():
        print("Notice: the checkpoint's CUDA random state is dropped (no GPU here); the CPU random states are restored.")
    elif cuda:
        for i, s in enumerate(cuda[:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), i)


def checksum(obj):
    """SHA-256 of a nested structure of dicts, lists and tensors (the bytes of every tensor, with
    its dtype and shape, and the repr of every other value): the checkpoint's integrity check."""
    h = hashlib.sha256()

    def walk(o):
        if torch.is_tensor(o):
            t = o.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(o.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(o, dict):
            for key in sorted(o, key=repr):
                h.update(repr(key).encode())
                walk(o[key])
        elif isinstance(o, (list, tuple)):
            h.update(b"[")
            for x in o:
                walk(x)
            h.update(b"]")
        else:
            h.update(repr(o).encode())

    walk(obj)
    return h.hexdigest()


def _to_cpu(obj):
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {key: _to_cpu(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(x) for x in obj)
    return obj


def all_finite(*objects):
    """True when every floating-point parameter, buffer and optimizer-state tensor of the models
    and optimizers is finite. One host synchronization per device."""
    tensors = []
    for o in objects:
        if isinstance(o, torch.optim.Optimizer):
            tensors += [t for s in o.state.values() for t in s.values() if torch.is_tensor(t)]
        else:
            tensors += list(o.parameters()) + list(o.buffers())
    checks = {}                                  # per device, so one host sync per device
    for t in tensors:
        if t.is_floating_point():
            checks.setdefault(t.device, []).append(torch.isfinite(t).all())
    return all(bool(torch.stack(c).all()) for c in checks.values())


def checkpoint_folder(path):
    """The folder a checkpoint at `path` goes to (~ expanded), created and checked to be writable
    by writing a temporary file there. Raises PermissionError naming the folder."""
    folder = Path(path).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test-", suffix=".tmp")
        os.close(fd)
        os.remove(tmp)
    except OSError as exc:
        raise PermissionError(f"cannot write checkpoints to the folder {folder} ({exc.strerror or exc}): "
                              f"choose a checkpoint_path in a writable folder") from None
    return folder


def save_checkpoint(path, G, D, opt_g, opt_d, step, epoch, history):
    """Write the whole training state to `path` (~ expanded) atomically: to a temporary file of its
    own in the same folder, then renamed over `path`. Refuses a state with NaN or inf weights."""
    path = Path(path).expanduser()
    if not all_finite(G, D):
        raise ValueError(f"G or D has NaN or infinite weights: no checkpoint written to {path}")
    folder = checkpoint_folder(path)
    state = _to_cpu({"format": FORMAT, "G": G.state_dict(), "D": D.state_dict(),
                     "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                     "types": {"opt_g": type(opt_g).__name__, "opt_d": type(opt_d).__name__},
                     "step": int(step), "epoch": int(epoch), "history": history, "rng": get_rng_state()})
    state["checksum"] = checksum(state)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _check_model(name, model, saved):
    expected = model.state_dict()
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    wrong = [f"{k}: saved {tuple(saved[k].shape)}, model {tuple(v.shape)}"
             for k, v in expected.items() if k in saved and tuple(saved[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"the checkpoint's {name} does not fit this {type(model).__name__} (built with other "
            f"settings?): missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shapes {wrong[:3]}. "
            f"Build {name} with the settings used when the checkpoint was saved.")
    nonfinite = [k for k, v in saved.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if nonfinite:
        raise CheckpointError(f"the checkpoint's {name} has NaN or infinite values in {nonfinite[:3]}: "
                              f"use an earlier checkpoint")


def _check_optimizer(name, opt, saved, saved_type):
    """Type, parameter count per group, and the shape of every per-parameter state tensor."""
    groups = saved.get("param_groups", [])
    signature = lambda group: [key for key in SIGNATURE_KEYS if key in group]  # older checkpoints
    same = (saved_type == type(opt).__name__ if saved_type
            else bool(groups) and signature(groups[0]) == signature(opt.param_groups[0]))
    if not same:
        raise CheckpointError(f"the checkpoint's {name} is a {saved_type or 'different optimizer'}, not a "
                              f"{type(opt).__name__}: build {name} as when the checkpoint was saved")
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in opt.param_groups]:
        raise CheckpointError(f"the checkpoint's {name} was made for other parameters; "
                              f"build the optimizer over the same model as when it was saved")
    params = [p for g in opt.param_groups for p in g["params"]]
    for index, entries in saved.get("state", {}).items():
        for key, t in entries.items():
            if torch.is_tensor(t) and t.ndim > 0 and tuple(t.shape) != tuple(params[index].shape):
                raise CheckpointError(f"the checkpoint's {name} state '{key}' of parameter {index} has shape "
                                      f"{tuple(t.shape)}, not {tuple(params[index].shape)}: were opt_g and "
                                      f"opt_d swapped, or the model built with other settings?")


def _check_progress(state):
    step, epoch, history = state["step"], state["epoch"], state["history"]
    if not (isinstance(step, int) and step >= 0 and isinstance(epoch, int) and epoch >= 0):
        raise CheckpointError(f"the checkpoint's step {step!r} and epoch {epoch!r} must be ints >= 0")
    if not (isinstance(history, dict) and all(isinstance(v, list) for v in history.values())
            and len({len(v) for v in history.values()}) <= 1
            and all(isinstance(x, (int, float)) for v in history.values() for x in v)):
        raise CheckpointError("the checkpoint's history is not a dict of equally long lists of numbers")


def _load_optimizer(name, opt, saved):
    """Restore the optimizer's state (moments, step counts) but keep the caller's hyperparameters
    (lr, betas, weight decay, ...). Returns a note on the hyperparameters that differ, or ''."""
    mine = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    opt.load_state_dict(saved)
    notes = []
    for group, settings in zip(opt.param_groups, mine):
        notes += [f"{name} {k}={v} (checkpoint: {group[k]})" for k, v in settings.items()
                  if k in group and repr(group[k]) != repr(v)]
        group.update(settings)
    return ", ".join(notes)


def load_checkpoint(path, G, D, opt_g=None, opt_d=None, restore_rng=True):
    """Load a checkpoint into G, D (and the optimizers); returns {'step', 'epoch', 'history'}.

    The file is read onto the CPU and everything is checked first (checksum, all parts present,
    shapes, optimizer types, finite weights, progress, random states): on any problem a
    CheckpointError says what is wrong and nothing is changed. Tensors then go to the device of the
    model or optimizer they belong to. The optimizers get the checkpoint's state (moments, step
    counts) but keep your hyperparameters (lr, betas, weight decay): one line says which differ.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupted or truncated?): {exc}. "
                              f"Delete it, or load an earlier checkpoint.") from None
    if not isinstance(state, dict) or any(k not in state for k in KEYS) or state["format"] != FORMAT:
        raise CheckpointError(f"{path} is not a gan_utils checkpoint (format {FORMAT}); "
                              f"save checkpoints with gan_utils.save_checkpoint")
    saved_sum = state.pop("checksum", None)
    if saved_sum is None:
        print(f"Notice: {path} carries no checksum (saved by an older gan_utils); it is loaded unchecked.")
    elif checksum(state) != saved_sum:
        raise CheckpointError(f"{path} is corrupted or truncated: its content does not match its checksum. "
                              f"Delete it, or load an earlier checkpoint.")
    _check_model("G", G, state["G"])
    _check_model("D", D, state["D"])
    types = state.get("types", {})
    for name, opt in (("opt_g", opt_g), ("opt_d", opt_d)):
        if opt is not None:
            _check_optimizer(name, opt, state[name], types.get(name))
    _check_progress(state)
    if restore_rng:
        _check_rng_state(state["rng"])
    G.load_state_dict(state["G"])                # copies onto the models' own devices
    D.load_state_dict(state["D"])
    notes = [_load_optimizer(name, opt, state[name])
             for name, opt in (("opt_g", opt_g), ("opt_d", opt_d)) if opt is not None]
    if any(notes):
        print("Keeping your optimizer settings: " + ", ".join(n for n in notes if n))
    if restore_rng:
        set_rng_state(state["rng"])
    return {"step": state["step"], "epoch": state["epoch"], "history": state["history"]}
