"""Save and resume a GAN run (networks, optimizers, progress, history, RNGs): written atomically with a
SHA-256 checksum; loading checks everything before it changes the models, optimizers or RNGs."""
import errno
import hashlib
import os
import pickle
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from .callbacks import all_finite
from .utils import _check_int

FORMAT = 1
NONNEGATIVE = ("step", "exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum")   # Adam, RMSprop, Adagrad
IMPLEMENTATION = ("capturable", "foreach", "fused", "differentiable")   # how a step runs, not what it computes
KEYS = ("format", "G", "D", "opt_g", "opt_d", "types", "step", "epoch", "history", "rng", "checksum")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: corrupted, truncated, or made for other models."""


def get_rng_state():
    """Every random state a run uses: Python, NumPy, torch CPU and (if present) CUDA."""
    np_state = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _check_rng_state(state):
    """Raise CheckpointError unless a `get_rng_state` dict can be restored (checked on fresh generators)."""
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
    """Restore what `get_rng_state` returned (CUDA states are dropped, with a notice, without CUDA)."""
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
    """SHA-256 of nested dicts, lists and tensors (tensor bytes, dtype and shape; repr of other values)."""
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


def checkpoint_folder(path):
    """The folder of `path` (~ expanded), created and checked writable; else PermissionError naming it."""
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


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                              # another user's process
        pass
    return True


def save_atomic(path, write):
    """write(file object) into a unique temporary file beside `path`, then rename it to `path`; stale temporaries
    of `path` are removed first, and on an error (a full disk) the temporary goes and OSError names file and space."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):   # .<name>.<pid>.*.tmp of a killed process
        pid = stale.name[len(path.name) + 2:].split(".")[0]
        if not pid.isdigit() or not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        if not isinstance(exc, (OSError, RuntimeError)):
            raise
        free = shutil.disk_usage(path.parent).free / 2 ** 20
        raise OSError(getattr(exc, "errno", None) or errno.EIO,
                      f"could not write {path} ({exc}); {free:,.0f} MiB free in {path.parent}: free some space "
                      f"or write to another folder (for checkpoints: set GAN_CHECKPOINT_DIR)") from exc
    return path


def save_checkpoint(path, G, D, opt_g, opt_d, step, epoch, history):
    """Write the training state to `path` (~ expanded) atomically (temporary file, then rename); refuses NaN/inf."""
    path = Path(path).expanduser()
    if not all_finite(G, D):
        raise ValueError(f"G or D has NaN or infinite weights: no checkpoint written to {path}")
    checkpoint_folder(path)
    state = _to_cpu({"format": FORMAT, "G": G.state_dict(), "D": D.state_dict(),
                     "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                     "types": {"opt_g": type(opt_g).__name__, "opt_d": type(opt_d).__name__},
                     "step": int(step), "epoch": int(epoch), "history": history, "rng": get_rng_state()})
    state["checksum"] = checksum(state)
    return save_atomic(path, lambda f: torch.save(state, f))


def load_file(path, what="checkpoint"):
    """torch.load(path) of plain data only (weights_only, on the CPU); CheckpointError naming the file otherwise."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line), "")
        if "Weights only load failed" in str(exc) and reason:      # a pickled object named: not plain data
            raise CheckpointError(f"{path} holds pickled Python objects, not plain data ({reason}): refused, "
                                  f"since loading them could run code. Delete it, or use another {what}.") from None
        exc_text = "its bytes are not a file that torch.save wrote"
    except Exception as exc:
        exc_text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    raise CheckpointError(f"{path} is not a readable {what} (corrupted or truncated?): {exc_text}. "
                          f"Delete it, or load an earlier {what}.")


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
    if saved_type != type(opt).__name__:
        raise CheckpointError(f"the checkpoint's {name} is a {saved_type}, not a {type(opt).__name__}: "
                              f"build {name} as when the checkpoint was saved")
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in opt.param_groups]:
        raise CheckpointError(f"the checkpoint's {name} was made for other parameters; "
                              f"build the optimizer over the same model as when it was saved")
    params = [p for g in opt.param_groups for p in g["params"]]
    for index, entries in saved.get("state", {}).items():
        for key, t in entries.items():
            if key in NONNEGATIVE and torch.is_tensor(t) and not bool((t >= 0).all()):
                raise CheckpointError(f"the checkpoint's {name} state '{key}' of parameter {index} has negative "
                                      f"or NaN values (a crafted or damaged file): use another checkpoint")
            if torch.is_tensor(t) and t.ndim > 0 and tuple(t.shape) != tuple(params[index].shape):
                raise CheckpointError(f"the checkpoint's {name} state '{key}' of parameter {index} has shape "
                                      f"{tuple(t.shape)}, not {tuple(params[index].shape)}: were opt_g and "
                                      f"opt_d swapped, or the model built with other settings?")


def _check_progress(state, path):
    step, epoch, history = state["step"], state["epoch"], state["history"]
    if not (isinstance(step, int) and step >= 0 and isinstance(epoch, int) and 0 <= epoch <= step):
        raise CheckpointError(f"{path}: the checkpoint's step {step!r} and epoch {epoch!r} must be ints, "
                              f"0 <= epoch <= step")
    if not (isinstance(history, dict) and all(isinstance(v, list) for v in history.values())
            and len({len(v) for v in history.values()}) <= 1
            and all(isinstance(x, (int, float)) for v in history.values() for x in v)):
        raise CheckpointError(f"{path}: the checkpoint's history is not a dict of equally long lists of numbers")
    steps, epochs = history.get("step") or [step], history.get("epoch") or [epoch - 1]
    if steps[-1] != step or not epochs[-1] < epoch:
        raise CheckpointError(f"{path}: the checkpoint's step {step} and epoch {epoch} disagree with its history "
                              f"(last row: step {steps[-1]}, epoch {epochs[-1]}): a crafted or damaged file")


def _load_optimizer(name, opt, saved):
    """Restore the optimizer's state but keep the caller's hyperparameters; returns a note on those that differ."""
    mine = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    opt.load_state_dict(saved)
    notes = []
    for group, settings in zip(opt.param_groups, mine):
        notes += [f"{name} {k}={v} (checkpoint: {group[k]})" for k, v in settings.items()
                  if k in group and k not in IMPLEMENTATION and repr(group[k]) != repr(v)]
        group.update(settings)
    return ", ".join(notes)


def read_checkpoint(path):
    """The checked content of a checkpoint file (format, checksum, step, epoch and history), without its checksum;
    CheckpointError naming the file when it is not one (FileNotFoundError when there is none)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = load_file(path)
    if not isinstance(state, dict) or any(k not in state for k in KEYS) or state["format"] != FORMAT:
        raise CheckpointError(f"{path} is not a gan_utils checkpoint (format {FORMAT}, with types and a checksum); "
                              f"save checkpoints with gan_utils.checkpoints.save_checkpoint")
    saved_sum = state.pop("checksum")
    if checksum(state) != saved_sum:
        raise CheckpointError(f"{path} is corrupted or truncated: its content does not match its checksum. "
                              f"Delete it, or load an earlier checkpoint.")
    _check_progress(state, path)
    return state


def load_checkpoint(path, G, D, opt_g=None, opt_d=None, restore_rng=True):
    """Load a checkpoint into G, D (and the optimizers), which keep your lr and betas; returns {'step', 'epoch',
    'history'}. All is checked first (checksum, shapes, types, values, RNGs): on a problem nothing changes."""
    state = read_checkpoint(path)
    _check_model("G", G, state["G"])
    _check_model("D", D, state["D"])
    optimizers = [(name, opt) for name, opt in (("opt_g", opt_g), ("opt_d", opt_d)) if opt is not None]
    for name, opt in optimizers:
        _check_optimizer(name, opt, state[name], state["types"].get(name))
    if restore_rng:
        _check_rng_state(state["rng"])
    G.load_state_dict(state["G"]), D.load_state_dict(state["D"])   # copies onto the models' own devices
    notes = [_load_optimizer(name, opt, state[name]) for name, opt in optimizers]
    if any(notes):
        print("Keeping your optimizer settings: " + ", ".join(n for n in notes if n))
    if restore_rng:
        set_rng_state(state["rng"])
    return {"step": state["step"], "epoch": state["epoch"], "history": state["history"]}


class Checkpoint:
    """The `checkpoint` of `train_gan`: save the run to `path` every `every` epochs and after the last one;
    with resume=True continue from the file when it exists."""

    def __init__(self, path, every=1, resume=True):
        _check_int("Checkpoint: every", every, 1, " (epochs)")
        self.path, self.every, self.resume = Path(path).expanduser(), every, resume
        self.objects = None

    def start(self, G, D, opt_g, opt_d):
        """Check the folder; load the checkpoint if resuming: {'step', 'epoch', 'history'} or None."""
        self.objects = (G, D, opt_g, opt_d)
        checkpoint_folder(self.path)
        if not (self.resume and self.path.is_file()):
            return None
        state = load_checkpoint(self.path, *self.objects)
        if state["step"]:
            print(f"Resumed from {self.path}: epoch {state['epoch']}, step {state['step']}")
        return state

    def epoch_end(self, step, epochs_done, last, history):
        if epochs_done % self.every == 0 or last:
            save_checkpoint(self.path, *self.objects, step, epochs_done, history)
