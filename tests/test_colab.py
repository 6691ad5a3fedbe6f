"""Colab for real (issue 25): a release that exists, results inside the package, and every notebook run from the
built wheel outside a checkout (scripts/colab_smoke.py: temporary HOME and cache, a stub google.colab, the setup
cell's pinned install redirected to the wheel, MNIST and Fashion-MNIST staged as a finished download leaves them)."""
import ast
import importlib.util
import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

import gan_utils
from gan_utils import notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
_spec = importlib.util.spec_from_file_location("colab_smoke", ROOT / "scripts" / "colab_smoke.py")
smoke = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smoke)


def code_cells(path):
    return ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
            if c["cell_type"] == "code"]


# ----------------------------------------------------------------------------- the release: one version everywhere
def test_pins_changelog_and_release_step_agree_with_the_version():
    version = gan_utils.__version__
    for path in NOTEBOOKS:
        setup = code_cells(path)[0]
        assert re.findall(r"gan-course/gan-course@v([\w.\-]+)", setup) == [version], path.name
        assert re.findall(r'version="([\w.\-]+)"', setup) == [version], f"{path.name}: setup_notebook(version=...)"
        assert "GAN_CHECKPOINT_DIR" in setup and "drive.mount" in setup, f"{path.name}: the Drive line"
        assert len([line for line in setup.splitlines() if line.strip()]) <= 5, path.name
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text(), "CHANGELOG.md has no section for this version"
    readme = (ROOT / "README.md").read_text()
    assert "git tag v" in readme and "git push origin v" in readme and "CHANGELOG.md" in readme
    assert 'attr = "gan_utils.__version__"' in (ROOT / "pyproject.toml").read_text()   # the wheel's version


def gan_utils_names(source):
    """Every gan_utils name a notebook's code uses, dotted: gu.X.Y, `from gan_utils... import X` and X.Y on those."""
    tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
    aliases, names = {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({a.asname or a.name: a.name for a in node.names if a.name.startswith("gan_utils")})
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gan_utils"):
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                names.add(f"{node.module}.{a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain = [node.attr]
            while isinstance(node.value, ast.Attribute):
                node = node.value
                chain.insert(0, node.attr)
            if isinstance(node.value, ast.Name) and node.value.id in aliases:
                names.add(".".join([aliases[node.value.id], *chain]))
    return names


def test_the_name_finder():
    code = ("import gan_utils as gu\nfrom gan_utils.lessons import dcgan\nfrom gan_utils.lessons.seeds import A as B\n"
            "%matplotlib inline\nx = gu.viz.W + gu.f(dcgan.run(B.c)).shape\n")
    assert gan_utils_names(code) == {"gan_utils.lessons.dcgan", "gan_utils.lessons.seeds.A", "gan_utils.viz.W", "gan_utils.viz",
                                     "gan_utils.f", "gan_utils.lessons.dcgan.run", "gan_utils.lessons.seeds.A.c"}


RESOLVE = """import importlib, json, sys, gan_utils
missing = []
for name in json.loads(sys.stdin.read()):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
            break
        except ImportError:
            continue
    try:
        for part in parts[i:]:
            obj = getattr(obj, part)
    except AttributeError:
        missing.append(name)
files = sorted({getattr(m, "__file__", None) or "" for n, m in list(sys.modules.items()) if n.startswith("gan_utils")})
print(json.dumps({"files": files, "version": gan_utils.__version__, "missing": missing}))
"""


def test_every_gan_utils_name_a_notebook_uses_is_in_the_built_wheel(colab):
    """The pin installs the package built from this checkout: every name the notebooks use must be in it."""
    used = sorted(set().union(*(gan_utils_names("\n".join(code_cells(p))) for p in NOTEBOOKS)))
    assert len(used) > 50 and "gan_utils.lessons.dcgan.dcgan_run" in used
    out = subprocess.run([str(colab["python"]), "-c", RESOLVE], input=json.dumps(used), capture_output=True,
                         text=True, cwd=colab["tmp"], env=colab["env"], check=True).stdout
    found = json.loads(out)
    assert found["version"] == gan_utils.__version__
    outside = [f for f in found["files"] if not f.startswith(colab["env"]["SMOKE_PREFIX"])]
    assert not outside, f"gan_utils modules from outside the wheel (an editable install?): {outside}"
    assert not found["missing"], f"names the notebooks use that the wheel lacks: {found['missing']}"


# ----------------------------------------------------------------------------- the wheel and its results
def test_the_wheel_is_small_and_holds_lessons_results_and_weights(colab):
    wheel = colab["wheel"]
    assert wheel.name == f"gan_utils-{gan_utils.__version__}-py3-none-any.whl"
    assert wheel.stat().st_size < smoke.WHEEL_LIMIT, f"{wheel.stat().st_size / 1e6:.2f} MB"
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ["gan_utils/lessons/dcgan.py", "gan_utils/weights/mnist_cnn_paper.pt",
                 *(f"gan_utils/results/{p.name}" for p in (ROOT / "gan_utils" / "results").iterdir())]:
        assert path in names, path


def test_every_committed_result_loads_and_no_notebook_reads_the_working_directory():
    files = sorted((ROOT / "gan_utils" / "results").iterdir())
    assert {f.suffix for f in files} == {".json", ".png"} and len(files) >= 14
    for f in files:
        data = notebook.load_result(f.name)
        assert isinstance(data, dict) if f.suffix == ".json" else data[:4] == b"\x89PNG", f.name
    for path in NOTEBOOKS:
        code = "\n".join(code_cells(path))
        for bad in ("experiments/results", '"experiments"', "Path.cwd", "read_text("):
            assert bad not in code, f"{path.name} reads {bad!r} relative to the working directory"
        for name in re.findall(r'load_result\("([\w.]+)"\)', code):
            assert (ROOT / "gan_utils" / "results" / name).is_file(), f"{path.name}: {name}"


def test_a_missing_result_names_the_file_and_the_fix():
    with pytest.raises(FileNotFoundError) as info:
        notebook.load_result("05_nothing.json")
    message = str(info.value)
    assert "gan_utils/results/05_nothing.json" in message and "pip install --force-reinstall" in message
    assert f"@v{gan_utils.__version__}" in message and "experiments/" in message


# ----------------------------------------------------------------------------- the setup cell's lines
def test_an_older_install_than_the_pin_prints_one_line_with_the_fix(capsys):
    notebook.setup_notebook(version="9.0.0", gpu_minutes_of_a_later_version=3)   # a later notebook, this install
    lines = capsys.readouterr().out.splitlines()
    notice = [line for line in lines if "9.0.0" in line]
    assert len(notice) == 1 and f"gan_utils {gan_utils.__version__} is installed" in notice[0]
    assert 'pip install --force-reinstall --no-deps "gan_utils @ git+https://github.com/gan-course/gan-course' \
           '@v9.0.0", then restart the kernel' in notice[0]
    assert notebook.version_notice(gan_utils.__version__) is None and notebook.version_notice(None) is None
    with pytest.raises(TypeError, match="unknown_argument"):
        notebook.setup_notebook(version=gan_utils.__version__, unknown_argument=1)


@pytest.mark.parametrize("name, expected", [
    ("Tesla T4", "take about 35 minutes (an estimate for the T4 class"),
    ("NVIDIA H100 80GB HBM3", "about 15 minutes (an estimate for the H100 class"),
    ("NVIDIA H200", "about 15 minutes (an estimate for the H100 class"),
    ("NVIDIA A100-SXM4-40GB", "35 min on a T4-class GPU and 15 min on an H100-class GPU (estimates; NVIDIA A100")])
def test_a_gpu_runtime_prints_the_expected_minutes(name, expected, monkeypatch, capsys):
    monkeypatch.setattr(notebook, "get_device", lambda: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert notebook.setup_notebook(gpu_minutes={"T4": 35, "H100": 15}).type == "cuda"
    assert expected in capsys.readouterr().out


# ----------------------------------------------------------------------------- the smoke test itself
@pytest.fixture(scope="session")
def colab(tmp_path_factory):
    """The wheel of this checkout in a fresh venv (system site packages), a Colab-like kernel environment and the
    datasets staged in its cache; skips only when there is no MNIST."""
    tmp = tmp_path_factory.mktemp("colab")
    mnist = smoke.default_mnist_dir()
    if mnist is None:
        pytest.skip("no MNIST: set GAN_DATA_DIR to a folder with MNIST/raw/ (the smoke test stages it)")
    wheel = smoke.build_wheel(tmp)
    python = smoke.make_venv(tmp / "venv", wheel)
    env = smoke.kernel_environment(tmp, python)
    staged = smoke.stage_data(tmp / "cache", mnist)
    print(f"\n{wheel.name}: {wheel.stat().st_size / 1e6:.2f} MB; staged {staged}")
    assert not smoke.inside_checkout(tmp)
    return {"tmp": tmp, "wheel": wheel, "python": python, "env": env, "staged": staged}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_colab_from_the_wheel(path, colab):
    seconds, nb = smoke.run_notebook(path, colab["wheel"], colab["env"], colab["tmp"] / "work")
    assert "smoke check: " + gan_utils.__version__ in "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert not smoke.problems(nb), f"{path.name} printed 'missing': {smoke.problems(nb)}"
    if path.name.startswith("05") and "FashionMNIST" in colab["staged"]:
        text = json.dumps([c.get("outputs") for c in nb.cells])
        assert "Fashion-MNIST could not be found" not in text, "the staged Fashion-MNIST was not found"
    print(f"{path.name}: {seconds:.0f} s from the wheel")


def test_widgets_and_tqdm_bars_with_ipywidgets_7_7(colab):
    """Colab ships ipywidgets 7.x: notebook 01 (controls, tqdm.auto bars) and the course's widget imports with 7.7,
    from the wheels .ci/run downloads into <cache>/gan-course/wheels (skipped when it could not)."""
    wheelhouse = smoke.default_wheelhouse()
    widgets = smoke.ipywidgets_7(colab["tmp"] / "w7", wheelhouse)
    if widgets is None:
        pytest.skip(f"no ipywidgets 7.7 wheel in {wheelhouse} (.ci/run downloads it when the registry is reachable)")
    env = smoke.kernel_environment(colab["tmp"] / "w7", colab["python"], widgets)
    env.update(SMOKE_IPYWIDGETS="7.7", PIP_NO_DEPS="1")
    staged = smoke.stage_data(colab["tmp"] / "w7" / "cache", smoke.default_mnist_dir())
    assert staged
    _, nb = smoke.run_notebook(NOTEBOOKS[0], colab["wheel"], env, colab["tmp"] / "w7" / "work")
    assert "ipywidgets 7.7" in "".join(o.get("text", "") for o in nb.cells[-1].outputs)
