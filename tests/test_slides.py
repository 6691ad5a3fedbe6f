"""The reveal.js slides of notebook 01 build offline and start in headless Chromium.

Needs Debian's `chromium` and the npm packages of package.json (`npm install`); skips without them.
"""
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01_gaussian_1d.ipynb"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def _build_slides_module():
    spec = importlib.util.spec_from_file_location("build_slides", ROOT / "scripts" / "build_slides.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def expected_slide_count(notebook):
    """Slides reveal.js should show: one per cell whose slide_type is 'slide' or 'subslide'."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    types = [c.get("metadata", {}).get("slideshow", {}).get("slide_type", "-") for c in cells]
    return sum(t in ("slide", "subslide") for t in types)


def _run_chromium(tmp_path, name, *args):
    profile = tmp_path / f"chromium-profile-{name}"  # a fresh profile for every start
    cmd = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_slides_of_notebook_01_start_offline_in_chromium(tmp_path):
    if not _chromium():
        pytest.skip("no Chromium: `apt-get install chromium` (Debian) to run the slide test")
    build_slides = _build_slides_module()
    missing = build_slides.missing_assets()
    if missing:
        pytest.skip(f"no local reveal.js and friends ({missing[0]} is missing): run `npm install` at the repo root")

    html_path = build_slides.build(NOTEBOOK, tmp_path / "slides")
    html = html_path.read_text(encoding="utf-8")
    assert "unpkg.com/reveal.js" not in html and "node_modules/reveal.js/dist/reveal.js" in html, \
        "the slides must load the local reveal.js, not a CDN copy"

    # A probe asks the running reveal.js (the same require.js module the slides load) for its state.
    reveal_url = re.search(r'"([^"]*reveal\.js/dist/reveal\.js)"', html).group(1)
    probe = ('<script>require(["%s"], function (Reveal) { var t = setInterval(function () {'
             ' if (Reveal.isReady()) { clearInterval(t);'
             ' document.body.setAttribute("data-probe-total", Reveal.getTotalSlides());'
             ' document.body.setAttribute("data-probe-ready", "yes"); } }, 50); });</script>' % reveal_url)
    probe_path = html_path.with_name("probe.html")
    probe_path.write_text(html.replace("</body>", probe + "</body>", 1), encoding="utf-8")

    dom = _run_chromium(tmp_path, "dom", "--dump-dom", probe_path.as_uri()).stdout
    assert 'data-probe-ready="yes"' in dom, "reveal.js did not start (is node_modules/reveal.js complete?)"
    assert re.search(r'class="reveal [^"]*\bready\b', dom), "reveal.js did not mark the deck ready"
    total = int(re.search(r'data-probe-total="(\d+)"', dom).group(1))
    assert total == expected_slide_count(NOTEBOOK), \
        f"reveal.js shows {total} slides, the notebook's metadata asks for {expected_slide_count(NOTEBOOK)}"

    screenshot = tmp_path / "slides_01_title.png"
    _run_chromium(tmp_path, "shot", "--window-size=1280,800", f"--screenshot={screenshot}", html_path.as_uri())
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000, "no screenshot of the title slide"
    print(f"screenshot of the title slide: {screenshot}")
