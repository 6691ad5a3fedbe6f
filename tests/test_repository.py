"""The repository stays cheap to clone (no tracked file over 1 MB, apart from an explicit allow-list),
and gan_utils keeps its shape: layers without upward imports or import circles, no lazy imports
but the optional dependencies, short functions, a short public API, and no unpickling."""
import ast
import inspect
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 1_000_000
ALLOWED = {"notebooks/*.ipynb": 3_000_000, "gan_utils/weights/*.pt": 5_000_000}  # pattern: its own limit


def tracked_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an sdist or wheel): nothing to check")
    return [name for name in out.decode().split("\0") if name]


def size_limit(name):
    return next((limit for pattern, limit in ALLOWED.items() if fnmatch(name, pattern)), LIMIT)


def test_no_tracked_file_over_its_size_limit():
    too_big = [f"{name}: {(ROOT / name).stat().st_size / 1e6:.2f} MB (limit {size_limit(name) / 1e6:.0f} MB)"
               for name in tracked_files()
               if (ROOT / name).is_file() and (ROOT / name).stat().st_size > size_limit(name)]
    assert not too_big, ("tracked files over their size limit; data, packages and downloads never go "
                         "into the repository (git rm --cached them and add them to .gitignore): " + "; ".join(too_big))


def test_size_limits():
    assert size_limit("dataset-fashion-mnist_0.0-1_all.deb") == LIMIT
    assert size_limit("notebooks/03_mnist_mlp_gan.ipynb") == 3_000_000
    assert size_limit("gan_utils/weights/mnist_cnn_paper.pt") == 5_000_000


def test_no_machine_paths_in_docs():
    """Committed docs name $GAN_DATA_DIR, not the folders of one machine."""
    offenders = [name for name in tracked_files() if name.endswith((".md", ".py", ".sh", ".toml", ".yml"))
                 and name != "tests/test_repository.py" and "/work/" in (ROOT / name).read_text(errors="ignore")]
    assert not offenders, f"machine-specific paths (/work/...) in {offenders}: write $GAN_DATA_DIR instead"


def test_package_exports_what_notebooks_import():
    import gan_utils as gu

    missing = [name for name in gu.__all__ if not hasattr(gu, name)]
    assert not missing, f"gan_utils.__all__ names {missing}, which gan_utils does not define"
    for name in ("train_gan", "d_step", "g_step", "mnist_split", "load_classifier", "TrainingInterrupted", "Progress"):
        assert name in gu.__all__, name
    # moved out of the top level: reached through their modules
    from gan_utils import checkpoints, classifier, fast
    from gan_utils.lessons import dcgan, dirac, seeds, toy  # noqa: F401
    assert callable(classifier.accuracy) and callable(classifier.held_out) and callable(fast.fast_steps)
    assert callable(checkpoints.Checkpoint) and callable(toy.train_toy)


# ----------------------------------------------------------------------------- gan_utils's shape
PACKAGE = ROOT / "gan_utils"
CORE = {"steps", "train", "losses", "models", "data", "metrics", "viz", "callbacks", "utils"}
PLUMBING = {"mnist", "classifier", "checkpoints", "runs", "fast", "notebook"}
# the only imports allowed inside a function: optional dependencies, where they are needed
LAZY_ALLOWED = {("callbacks.py", "Recorder"): {"torch.utils.tensorboard"},
                ("notebook.py", "show_source"): {"IPython.display"},
                ("notebook.py", "interact_manual"): {"ipywidgets"},
                ("mnist.py", "_download"): {"torchvision"}}
MAX_FUNCTION_LINES, MAX_TRAIN_GAN_PARAMETERS, MAX_PUBLIC_NAMES = 60, 13, 75


def module_name(path):
    """gan_utils/lessons/toy.py -> 'gan_utils.lessons.toy'; a package's __init__.py -> the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules():
    """{module name: (path, ast tree)} of every gan_utils/**/*.py."""
    return {module_name(path): (path, ast.parse(path.read_text(), str(path)))
            for path in sorted(PACKAGE.rglob("*.py"))}


def enclosing_functions(tree):
    """{id(node): 'Outer.inner' qualified name of the function it is in} for every node inside a
    function body (a method's name includes its class)."""
    inside = {}

    def visit(node, names, in_function):
        for child in ast.iter_child_nodes(node):
            is_def = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            child_names = names + [child.name] if is_def else names
            if in_function:
                inside[id(child)] = ".".join(names)
            visit(child, child_names, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(tree, [], False)
    return inside


def imports(name, path, tree, known):
    """(node, imported name, gan_utils module it resolves to or None) for every import statement;
    `from . import x` resolves to the submodule x when there is one, else to the package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = next((alias.name.rsplit(".", i)[0] for i in range(alias.name.count(".") + 1)
                               if alias.name.rsplit(".", i)[0] in known), None)
                out.append((node, alias.name, target))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((node, sub if sub in known else base, sub if sub in known else (base if base in known else None)))
    return out


def import_graph():
    modules = package_modules()
    graph, lazy = {}, []
    for name, (path, tree) in modules.items():
        inside = enclosing_functions(tree)
        graph[name] = set()
        for node, imported, target in imports(name, path, tree, modules):
            if target is not None and target != name:
                graph[name].add(target)
            if id(node) in inside:
                lazy.append((name, path, inside[id(node)], imported, target))
    return graph, lazy


def find_cycle(graph):
    """One import circle as a list of modules [a, b, ..., a], or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def layer(name):
    parts = name.split(".")
    if parts[:2] == ["gan_utils", "lessons"]:
        return "lessons"
    if len(parts) == 2 and parts[1] in CORE:
        return "core"
    if len(parts) == 2 and parts[1] in PLUMBING:
        return "plumbing"
    return None


ALLOWED_LAYERS = {"core": {"core"}, "plumbing": {"core", "plumbing"}, "lessons": {"core", "plumbing", "lessons", None}}


def upward_imports(graph, packages=()):
    """'a (layer) imports b (layer)' for each import against the layers; `packages` (the __init__
    modules) are exempt as importers."""
    return [f"{name} ({layer(name)}) imports {target} ({layer(target)})"
            for name, targets in sorted(graph.items()) if name not in packages
            for target in sorted(targets) if layer(target) not in ALLOWED_LAYERS[layer(name)]]


def test_the_checks_find_known_cases():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert [layer(n) for n in ("gan_utils.steps", "gan_utils.runs", "gan_utils.lessons.toy", "gan_utils")] == \
        ["core", "plumbing", "lessons", None]
    graph = {"gan_utils.steps": {"gan_utils.runs"}, "gan_utils.runs": {"gan_utils.lessons.toy", "gan_utils.train"},
             "gan_utils.lessons.toy": {"gan_utils.runs", "gan_utils"}, "gan_utils": {"gan_utils.lessons.toy"}}
    assert upward_imports(graph, packages={"gan_utils"}) == [
        "gan_utils.runs (plumbing) imports gan_utils.lessons.toy (lessons)",
        "gan_utils.steps (core) imports gan_utils.runs (plumbing)"]
    tree = ast.parse("import os\nfrom .steps import d_step\ndef f():\n    from . import runs\n"
                     "class C:\n    def m(self):\n        import ipywidgets\n")
    found = [(imported, target, enclosing_functions(tree).get(id(node)))
             for node, imported, target in imports("gan_utils.fake", PACKAGE / "fake.py", tree,
                                                   {"gan_utils.steps", "gan_utils.runs"})]
    assert found == [("os", None, None), ("gan_utils.steps", "gan_utils.steps", None),
                     ("gan_utils.runs", "gan_utils.runs", "f"), ("ipywidgets", None, "C.m")]


def test_gan_utils_has_no_import_circle():
    graph, _ = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import circle in gan_utils: " + " -> ".join(cycle)


def test_gan_utils_imports_only_downwards():
    """core imports only core; plumbing imports core and plumbing; lessons import anything; nothing
    outside gan_utils.lessons imports a lesson. __init__.py files are exempt from the layers."""
    graph, _ = import_graph()
    packages = {name for name, (path, _) in package_modules().items() if path.name == "__init__.py"}
    unknown = [name for name in graph if name not in packages and layer(name) is None]
    assert not unknown, f"modules in no layer: {unknown}; add them to CORE or PLUMBING in this test"
    upward = upward_imports(graph, packages)
    assert not upward, "upward imports: " + "; ".join(upward)


def test_the_top_level_package_does_not_load_the_lessons():
    """Lessons are imported by name (`from gan_utils.lessons import toy`), never by `import gan_utils`."""
    code = "import sys, gan_utils; print(sorted(m for m in sys.modules if m.startswith('gan_utils.lessons')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_no_lazy_imports_but_optional_dependencies():
    """An import inside a function hides a dependency (and, of a gan_utils module, a circle): only the
    optional dependencies of LAZY_ALLOWED may be imported there."""
    _, lazy = import_graph()
    bad = [f"{path.relative_to(ROOT)}: {function} imports {imported}" for name, path, function, imported, target in lazy
           if target is not None or imported not in LAZY_ALLOWED.get((path.name, function.split(".")[0]), set())]
    assert not bad, "imports inside functions: " + "; ".join(bad)


def test_functions_are_short():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} has {node.end_lineno - node.lineno + 1} lines"
            for _, (path, tree) in package_modules().items() for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (def to last line): " + "; ".join(long)


def test_train_gan_and_the_public_api_stay_small():
    import gan_utils as gu

    parameters = list(inspect.signature(gu.train_gan).parameters)
    assert len(parameters) <= MAX_TRAIN_GAN_PARAMETERS, \
        f"train_gan has {len(parameters)} parameters (at most {MAX_TRAIN_GAN_PARAMETERS}): {parameters}"
    assert len(gu.__all__) <= MAX_PUBLIC_NAMES, f"gan_utils.__all__ has {len(gu.__all__)} names"
    assert len(set(gu.__all__)) == len(gu.__all__), "gan_utils.__all__ names something twice"


def unpickling_calls(tree):
    """Line numbers of torch.load(..., weights_only=False), pickle.load(s) and `from pickle import load`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            unsafe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is False
                         for k in node.keywords)
            if (owner == "torch" and node.func.attr == "load" and unsafe) or \
                    (owner in ("pickle", "cPickle", "dill") and node.func.attr in ("load", "loads", "Unpickler")):
                found.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module in ("pickle", "dill"):
            if any(alias.name in ("load", "loads", "Unpickler") for alias in node.names):
                found.append(node.lineno)
    return sorted(found)


def test_unpickling_calls_are_found():
    code = "import torch, pickle\ntorch.load(p, weights_only=False)\ntorch.load(p, weights_only=True)\n" \
           "torch.load(p)\npickle.load(f)\nfrom pickle import loads\n"
    assert unpickling_calls(ast.parse(code)) == [2, 5, 6]


def test_nothing_unpickles_untrusted_files():
    """torch.load(..., weights_only=False) and pickle.load run code from the file: a downloaded or
    shared checkpoint must never do that. Load tensors with weights_only=True."""
    offenders = [f"{path.relative_to(ROOT)}:{line}" for folder in ("gan_utils", "experiments", "scripts", "benchmarks")
                 for path in sorted((ROOT / folder).rglob("*.py"))
                 for line in unpickling_calls(ast.parse(path.read_text(), str(path)))]
    assert not offenders, "unpickling calls (use torch.load(..., weights_only=True)): " + ", ".join(offenders)
