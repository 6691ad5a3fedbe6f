"""The notebooks themselves: no code copied between them, and a short setup cell that pins the
course repository at the package's version.

Shared code belongs in gan_utils, written once. (a) looks for any run of MIN_LINES or more
consecutive code lines (blank lines and comments ignored, whitespace normalized) that appears in
two notebooks; the setup cell (the first code cell) is exempt, since every notebook must install
gan_utils itself. (b) checks that setup cell.
"""
import json
import re
from pathlib import Path

import pytest

import gan_utils

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.ipynb"))
MIN_LINES = 6
REPO = "git+https://github.com/gan-course/gan-course"


def code_cells(path):
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def normalized_lines(source):
    """Code lines without comments, blank lines, notebook magics and surrounding whitespace."""
    lines = []
    for line in source.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()   # a trailing comment (not a '#' inside a string start)
        if line and not line.startswith(("#", "%", "!")):
            lines.append(re.sub(r"\s+", " ", line))
    return lines


def windows(path, n=MIN_LINES):
    """{tuple of n consecutive normalized lines of one cell: cell index} over every code cell
    but the first (the setup cell)."""
    found = {}
    for index, source in enumerate(code_cells(path)[1:], start=1):
        lines = normalized_lines(source)
        for i in range(len(lines) - n + 1):
            found.setdefault(tuple(lines[i:i + n]), index)
    return found


def repeated_runs(paths, n=MIN_LINES):
    """Every run of n lines found in two different notebooks: [(run, first path, second path)]."""
    seen, repeats = {}, []
    for path in paths:
        for run in windows(path, n):
            if run in seen and seen[run] != path:
                repeats.append((run, seen[run], path))
            seen.setdefault(run, path)
    return repeats


def test_the_duplicate_finder_finds_a_copy(tmp_path):
    body = "\n".join(f"x{i} = f({i})  # step {i}" for i in range(7))
    for name, extra in (("a.ipynb", "y = 1"), ("b.ipynb", "z = 2")):
        cells = [{"cell_type": "code", "source": "import gan_utils as gu"},
                 {"cell_type": "code", "source": f"{extra}\n\n{body}"}]
        (tmp_path / name).write_text(json.dumps({"cells": cells}))
    assert len(repeated_runs([tmp_path / "a.ipynb", tmp_path / "b.ipynb"])) == 2   # 7 lines: two windows of 6
    assert repeated_runs([tmp_path / "a.ipynb"]) == []


def test_no_code_is_repeated_across_notebooks():
    assert len(NOTEBOOKS) >= 2
    repeats = repeated_runs(NOTEBOOKS)
    report = "\n\n".join(f"{a.name} and {b.name}:\n    " + "\n    ".join(run) for run, a, b in repeats[:5])
    assert not repeats, (f"{len(repeats)} runs of {MIN_LINES}+ lines appear in two notebooks; move the code into "
                         f"gan_utils once:\n\n{report}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_is_short_and_pins_the_package_version(path):
    setup = code_cells(path)[0]
    lines = [line for line in setup.splitlines() if line.strip()]
    assert len(lines) <= 5, f"{path.name}: the setup cell has {len(lines)} lines; keep it at 5 or fewer"
    pins = re.findall(re.escape(REPO) + r"@([\w.\-]+)", setup)
    assert pins == [f"v{gan_utils.__version__}"], \
        f"{path.name}: the setup cell must install {REPO}@v{gan_utils.__version__}, found {pins or 'no pin'}"
    assert "import gan_utils as gu" in setup and "setup_notebook(" in setup
