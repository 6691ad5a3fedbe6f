"""The lessons as teaching material (issue 26): what every notebook must have, read from the .ipynb files.

* nothing internal reaches students: no "goal", "NOT met", "our target was", "we aimed" in markdown, code or
  stored text output (comparisons with published numbers are fine, and so is "the target density");
* at most 55 slides (cells of slide_type 'slide' or 'subslide'), about a lecture;
* the first cell is the lecture plan: minutes per part and one part marked optional;
* a student-written exercise: a stub cell marked REPLACE, then a check cell that prints "passed"/"correct" or "not yet"/"not written";
* every exercise solution sits in <details>.

Checks listed in PENDING (lessons whose rework waits for a real-profile run) report as xfail while they fail, so
the test shows that it catches them; remove an entry once its lesson passes.
"""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.ipynb"))
MAX_SLIDES = 55
INTERNAL = re.compile(r"\bNOT met\b|\bgoals?\b|\b(?:our|the) (?:own )?(?:target|aim)s? (?:was|were|is)\b|"
                      r"label=f?[\"']target\b|\bwe aimed\b|\baimed for\b", re.IGNORECASE)
# lessons whose rework needs a real-profile run that has not been stored yet: which checks fail on them today
PENDING = {}


def cells(notebook):
    return json.loads(notebook.read_text(encoding="utf-8"))["cells"]


def texts(cell):
    """The cell's source and its stored text outputs."""
    yield "".join(cell["source"])
    for out in cell.get("outputs", []):
        yield "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))


def check(notebook, name):
    """Mark the test a strict xfail when `name` is pending for this lesson."""
    if name in PENDING.get(notebook.name[:2], ()):
        pytest.xfail(f"{notebook.name}: '{name}' waits for the lesson's rework (issue 26)")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_no_internal_goals_reach_students(notebook):
    hits = [f"cell {i}: {m.group(0)!r} in ...{text[max(0, m.start() - 40):m.end() + 40]!r}..."
            for i, cell in enumerate(cells(notebook)) for text in texts(cell) for m in INTERNAL.finditer(text)]
    if hits:
        check(notebook, "internal")
    assert not hits, "internal goal/target lines:\n" + "\n".join(hits[:10])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_at_most_55_slides(notebook):
    n = sum(c.get("metadata", {}).get("slideshow", {}).get("slide_type") in ("slide", "subslide")
            for c in cells(notebook))
    if n > MAX_SLIDES:
        check(notebook, "slides")
    assert n <= MAX_SLIDES, f"{notebook.name} has {n} slides (at most {MAX_SLIDES})"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_first_slide_is_the_lecture_plan(notebook):
    first = "".join(cells(notebook)[0]["source"])
    ok = bool(re.search(r"\bmin(?:utes)?\b", first)) and "optional" in first.lower() and first.count("|") >= 6
    if not ok:
        check(notebook, "plan")
    assert ok, f"{notebook.name}: the first cell must give the lecture plan (a table of parts with minutes, one optional)"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_students_write_code_that_a_cell_checks(notebook):
    code = ["".join(c["source"]) for c in cells(notebook) if c["cell_type"] == "code"]
    stubs = [i for i, src in enumerate(code) if "REPLACE" in src]
    checked = any(re.search(r"passed|correct", src) and re.search(r"not (?:yet|written)", src)
                  for src in code[stubs[0] + 1:]) if stubs else False
    if not checked:
        check(notebook, "exercise")
    assert checked, f"{notebook.name}: no stub marked REPLACE followed by a check cell printing 'passed'/'not yet'"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_are_folded(notebook):
    bare = [i for i, c in enumerate(cells(notebook)) if c["cell_type"] == "markdown"
            and re.search(r"^\s*\**Solution", "".join(c["source"]), re.MULTILINE | re.IGNORECASE)
            and "<details>" not in "".join(c["source"])]
    assert not bare, f"{notebook.name}: solutions in plain view in cells {bare}: put them in <details>"
