"""The Colab smoke test: every notebook run as a new Colab user would run it, offline, on the CPU.

Builds the wheel from this checkout (pip wheel --no-deps --no-build-isolation, from a copy), installs it non-editable
(--no-deps) into a fresh virtual environment with the system site packages (which hold the course's dependencies),
and runs each notebook in the CI profile with nbclient in a temporary folder that is not a checkout: HOME and
XDG_CACHE_HOME in that folder, a stub `google.colab` imported when the kernel starts (so the setup cell takes its
Colab branch), the setup cell's `pip install` of the pinned tag redirected to the built wheel, and MNIST /
Fashion-MNIST pre-staged in the per-user cache as a finished download leaves them (<cache>/gan-course/<Dataset>/raw/
*.gz). A notebook fails if a cell raises or prints "missing". ../shared and the checkout are only read.

    python scripts/colab_smoke.py                     # all notebooks; prints the wheel size and each run's time
    python scripts/colab_smoke.py 01 05 --keep /tmp/s  # some notebooks; keep the folder to look at

--ipywidgets-7 runs the notebooks with ipywidgets 7.7 (Colab's) in front of the installed 8.x, from the wheels in
--wheelhouse (default $GAN_WHEELHOUSE or <cache>/gan-course/wheels; .ci/run downloads them when it can).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPO_URL = "git+https://github.com/gan-course/gan-course"
WHEEL_LIMIT = 5_000_000
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
IPYWIDGETS_7 = ("ipywidgets==7.7.*", "widgetsnbextension==3.6.*", "jupyterlab_widgets==1.1.*", "ipython_genutils")
# The system site packages may hold an editable install of this checkout, whose import hook would fill in what the
# wheel lacks (gan_utils.lessons, say): the venv's sitecustomize removes that hook, as on Colab, which has none.
HIDE_EDITABLE = """import sys
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable___gan_utils")]
"""
CHECK_CELL = """import os, sys, gan_utils
print("smoke check:", gan_utils.__version__, gan_utils.__file__, os.getcwd())
outside = [m.__name__ for m in list(sys.modules.values()) if m.__name__.startswith("gan_utils")
           and not (getattr(m, "__file__", None) or "").startswith(os.environ["SMOKE_PREFIX"])]
assert not outside, f"modules not from the wheel: {outside}"
assert "google.colab" in sys.modules
if os.environ.get("SMOKE_IPYWIDGETS"):
    import ipywidgets
    from ipywidgets import interact, interact_manual, interactive, FloatSlider, IntSlider, FloatLogSlider
    from tqdm.auto import tqdm
    assert ipywidgets.__version__.startswith(os.environ["SMOKE_IPYWIDGETS"]), ipywidgets.__version__
    bar = tqdm(total=2, desc="widget bar"); bar.update(2); bar.close()
    import tqdm.notebook
    assert isinstance(bar, tqdm.notebook.tqdm) and bar.container is not None, type(bar).__mro__   # a widget bar
    interactive(lambda x: x, x=FloatSlider(min=0, max=1)); interact_manual(lambda n: n, n=IntSlider(1, 1, 3))
    print("ipywidgets", ipywidgets.__version__, "widgets and the tqdm bar work")
"""


def default_mnist_dir():
    """$GAN_DATA_DIR, else ../shared/mnist-full beside the checkout, else the checkout's data/: a folder whose
    MNIST/raw holds the four idx files; None when there is none."""
    for folder in (os.environ.get("GAN_DATA_DIR"), ROOT.parent / "shared" / "mnist-full", ROOT / "data"):
        if folder and len(list((Path(folder) / "MNIST" / "raw").glob("*-ubyte*"))) >= 4:
            return Path(folder)
    return None


def default_wheelhouse():
    """Where .ci/run puts the ipywidgets 7.7 wheels: $GAN_WHEELHOUSE, else <per-user cache>/gan-course/wheels."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("GAN_WHEELHOUSE") or cache / "gan-course" / "wheels")


def build_wheel(out):
    """The wheel of this checkout, built from a copy (the checkout gets no build/ folder): its path."""
    src = Path(out) / "src"
    shutil.copytree(ROOT / "gan_utils", src / "gan_utils", ignore=shutil.ignore_patterns("__pycache__", "*.tmp"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(Path(out) / "dist"), str(src)], check=True)
    wheel, = (Path(out) / "dist").glob("gan_utils-*.whl")
    return wheel


def make_venv(folder, wheel):
    """A virtual environment with the system site packages and the wheel installed non-editable: its python."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(folder)], check=True)
    python = Path(folder) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "sitecustomize.py").write_text(HIDE_EDITABLE)
    return python


def stage_data(cache, mnist_dir, fashion_dir=FASHION_DEBIAN):
    """Copy MNIST's and Fashion-MNIST's .gz idx files into <cache>/gan-course/<Dataset>/raw/, where a finished
    torchvision download leaves them. Returns the datasets staged."""
    staged = []
    for dataset, source in (("MNIST", Path(mnist_dir) / "MNIST" / "raw"), ("FashionMNIST", Path(fashion_dir))):
        files = sorted(source.glob("*-ubyte.gz")) if source.is_dir() else []
        if files:
            target = Path(cache) / "gan-course" / dataset / "raw"
            target.mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copyfile(f, target / f.name)
            staged.append(dataset)
    return staged


def kernel_environment(tmp, python, ipywidgets_dir=None):
    """A Colab-like environment: temporary HOME and cache, the stub, a kernelspec for the venv's python."""
    home, cache, stub, jupyter = (Path(tmp) / name for name in ("home", "cache", "stub", "jupyter"))
    (stub / "google" / "colab").mkdir(parents=True, exist_ok=True)   # google/ stays a namespace package
    (stub / "google" / "colab" / "__init__.py").write_text('"""Stub of Colab\'s module (smoke test)."""\n')
    startup = home / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-colab.py").write_text("import google.colab  # Colab imports it before the first cell\n")
    spec = jupyter / "kernels" / "colab-smoke"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [str(python), "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"], "display_name": "colab smoke",
                                                  "language": "python"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GAN_", "PYTHON", "JUPYTER", "IPYTHON", "XDG_",
                                                                     "MPL", "PIP_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), GAN_PROFILE="ci", JUPYTER_PATH=str(jupyter),
               PYTHONPATH=os.pathsep.join(str(p) for p in (ipywidgets_dir, stub) if p), PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", SMOKE_PREFIX=str(Path(python).parent.parent))
    return env


def problems(nb):
    """Lines of a run's outputs that print 'missing', as 'cell N: text'."""
    found = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") + "".join(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
            found += [f"cell {index}: {line.strip()[:200]}" for line in text.splitlines() if "missing" in line.lower()]
    return found


def prepare(path, wheel):
    """The notebook with its setup cell's pinned install pointed at the wheel, and a last cell checking the run."""
    import nbformat   # lazy: only this script needs it

    nb = nbformat.read(path, as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    version = wheel.name.split("-")[1]
    pin = f"gan_utils @ {REPO_URL}@v{version}"
    if setup.source.count(pin) != 1:
        raise AssertionError(f"{path.name}: the setup cell does not install {pin!r} once: {setup.source!r}")
    setup.source = setup.source.replace(pin, f"gan_utils @ {wheel.as_uri()}")
    nb.cells.append(nbformat.v4.new_code_cell(CHECK_CELL))
    return nb


def run_notebook(path, wheel, env, workdir, timeout=900):
    """Run one notebook with nbclient in `workdir` under `env`: (seconds, executed notebook). Raises on a cell error."""
    from nbclient import NotebookClient   # lazy: only this script needs it

    nb = prepare(path, wheel)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)             # the kernel inherits the environment of this process
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="colab-smoke",
                       resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return time.perf_counter() - start, nb


def inside_checkout(folder):
    return any((p / ".git").exists() or (p / "pyproject.toml").exists() for p in (Path(folder), *Path(folder).parents))


def ipywidgets_7(tmp, wheelhouse):
    """ipywidgets 7.7 and what it needs, from `wheelhouse`, into a --target folder: the folder, or None."""
    if not sorted(Path(wheelhouse).glob("ipywidgets-7.7*.whl")):
        return None
    target = Path(tmp) / "ipywidgets7"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--find-links",
                    str(wheelhouse), "--target", str(target), *IPYWIDGETS_7], check=True)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook numbers or names (default: all)")
    parser.add_argument("--keep", help="folder to work in and keep (default: a temporary one, removed)")
    parser.add_argument("--ipywidgets-7", action="store_true", help="run with ipywidgets 7.7 from --wheelhouse")
    parser.add_argument("--wheelhouse", default=str(default_wheelhouse()))
    args = parser.parse_args(argv)
    mnist = default_mnist_dir()
    if mnist is None:
        sys.exit("no MNIST (set GAN_DATA_DIR to a folder with MNIST/raw/): the smoke test needs it")
    paths = [p for p in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
             if not args.notebooks or any(p.name.startswith(n) for n in args.notebooks)]
    if args.keep and Path(args.keep).exists() and any(Path(args.keep).iterdir()):
        sys.exit(f"--keep {args.keep}: choose a new or empty folder")
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="colab-smoke-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        wheel = build_wheel(tmp)
        print(f"{wheel.name}: {wheel.stat().st_size / 1e6:.2f} MB")
        python = make_venv(tmp / "venv", wheel)
        widgets = ipywidgets_7(tmp, args.wheelhouse) if args.ipywidgets_7 else None
        if args.ipywidgets_7 and widgets is None:
            sys.exit(f"no ipywidgets 7.7 wheel in {args.wheelhouse}")
        env = kernel_environment(tmp, python, widgets)
        if widgets:   # an overlay of 7.7 (and widgetsnbextension 3.6, which wants the classic `notebook` that
            env.update(SMOKE_IPYWIDGETS="7.7", PIP_NO_DEPS="1")   # Colab has): the setup cell's pip skips deps
        print("staged:", stage_data(tmp / "cache", mnist))
        assert not inside_checkout(tmp / "work"), tmp
        failed = 0
        for path in paths:
            seconds, nb = run_notebook(path, wheel, env, tmp / "work")
            bad = problems(nb)
            (tmp / "work" / path.name).write_text(json.dumps(nb, indent=1, ensure_ascii=False))   # kept with --keep
            failed += bool(bad)
            print(f"{path.name}: {seconds:.0f} s" + ("".join(f"\n  prints: {b}" for b in bad) if bad else ", ok"))
        sys.exit(1 if failed else 0)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
