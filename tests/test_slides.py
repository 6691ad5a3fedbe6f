"""Every notebook's reveal.js deck, built offline by scripts/build_slides.py and checked in headless
Chromium at reveal's own size, 960x700 (what a projector shows):

* it starts, with as many slides as the notebook's metadata asks for, and loads nothing from the internet;
* no slide is taller than 700 px with all its fragments shown;
* every slide with a figure (img / svg / canvas) or a formula (a displayed MathJax equation,
  $$...$$; inline symbols such as $D(x)$ in running text do not count) has speaker notes: a
  markdown cell of slide_type "notes" after the slide's content;
* a math slide (the one with the most formulas, display equations first) opened directly by URL,
  as in a reload in the middle of a talk, shows each formula once, and no display equation sticks
  out of the slide;
* the speaker view (S) opens offline and shows the notes.

Screenshots of a few slides per deck go to build/slide-shots/<deck>/ (git-ignored): look at them.
Failures name the deck, the slide (number as shown on the slide, and its #/h/v URL) and its height.

Needs Debian's `chromium`, the npm packages of package.json (`npm install`) and websocket-client
(installed with Jupyter); skips without them. All decks take well under 2 minutes on 2 cores.
"""
import json
import time
from pathlib import Path

import pytest

from cdp import Browser, chromium_path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
SHOTS = ROOT / "build" / "slide-shots"
WIDTH, HEIGHT = 960, 700   # reveal's slide size in the built decks
SHOTS_PER_DECK = 4


def expected_slide_count(notebook):
    """Slides reveal.js should show: one per cell whose slide_type is 'slide' or 'subslide'."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    types = [c.get("metadata", {}).get("slideshow", {}).get("slide_type", "-") for c in cells]
    return sum(t in ("slide", "subslide") for t in types)


# In the page: wait for reveal.js, then for MathJax's start-up typeset and everything queued after it.
READY_JS = "!!(window.Reveal && Reveal.isReady && Reveal.isReady() && window.MathJax && MathJax.Hub)"
MATH_IDLE_JS = """!!(MathJax.isReady && !MathJax.Hub.queue.pending && !MathJax.Hub.queue.running
                     && !MathJax.Hub.queue.queue.length)"""

# In the page: every slide with all fragments shown: its height, figures, formulas and notes.
MEASURE_JS = """(() => {
  const out = [];
  const slides = Reveal.getSlides();
  for (let i = 0; i < slides.length; i++) {
    const s = slides[i], idx = Reveal.getIndices(s);
    const fragments = s.querySelectorAll('.fragment').length;
    Reveal.slide(idx.h, idx.v, fragments ? fragments - 1 : undefined);   // reading scrollHeight lays it out
    const content = [...s.querySelectorAll('img, svg, canvas, script[type^="math/tex"]')]
      .filter(e => !e.closest('aside.notes'));
    const notes = [...s.querySelectorAll('aside.notes')].map(a => a.textContent.trim()).join(' ');
    let label = s.querySelector('h1, h2, h3, h4') || s.querySelector('.jp-InputArea-editor') || s;
    label = label.cloneNode(true);
    label.querySelectorAll('script, .MJX_Assistive_MathML, .MathJax_Preview').forEach(e => e.remove());
    out.push({number: i + 1, h: idx.h, v: idx.v, height: s.scrollHeight,
              hidden_fragments: s.querySelectorAll('.fragment:not(.visible)').length,
              figure: content.some(e => e.tagName !== 'SCRIPT'),
              formula: content.some(e => e.tagName === 'SCRIPT' && e.type.includes('mode=display')),
              math: content.filter(e => e.tagName === 'SCRIPT').length, notes: notes.length,
              title: label.textContent.replace(/\\u00b6/g, '').trim().split('\\n')[0].slice(0, 50)});
  }
  Reveal.slide(0, 0);
  return out;
})()"""

# In the page, on the slide shown: MathJax output per formula (exactly one rendering each), and
# display equations inside the slide.
MATH_CHECK_JS = """(() => {
  const s = Reveal.getCurrentSlide(), box = s.getBoundingClientRect();
  // (reveal copies the current slide into its screen-reader region, .aria-status: not shown)
  const scripts = [...document.querySelectorAll('.slides script[type^="math/tex"]')];
  const doubled = scripts.filter(sc => {
    const frames = document.querySelectorAll('[id="' + sc.id + '-Frame"]');
    return frames.length !== 1 || frames[0].querySelectorAll(':scope > .mjx-math').length !== 1;
  }).map(sc => sc.textContent.slice(0, 40));
  const outside = [...s.querySelectorAll('script[type="math/tex; mode=display"]')]
    .filter(sc => { const f = document.getElementById(sc.id + '-Frame');
      return f && [...f.querySelectorAll('.mjx-math')].some(m => {
        const r = m.getBoundingClientRect();
        return r.width > 0 && (r.right > box.right + 2 || r.left < box.left - 2); }); })
    .map(sc => sc.textContent.slice(0, 40));
  return {formulas: s.querySelectorAll('script[type^="math/tex"]').length, all: scripts.length, doubled, outside};
})()"""


def _label(deck, s):
    return f"{deck} slide {s['number']} (#/{s['h']}/{s['v']}, \"{s['title']}\")"


def _math_idle(page, what, timeout=60):
    """MathJax has typeset everything, and what was queued after (twice in a row: a re-render may follow)."""
    for _ in range(2):
        assert page.wait_for(MATH_IDLE_JS, timeout=timeout), f"{what}: MathJax did not finish"
        time.sleep(0.2)


def _wait_ready(page, what):
    assert page.wait_for(READY_JS, timeout=60), f"{what}: reveal.js or MathJax did not start"
    _math_idle(page, what)


def _screenshot_choice(slides):
    """The title slide, then figure and formula slides, the tallest first."""
    chosen = [slides[0]]
    for s in sorted(slides, key=lambda s: -s["height"]):
        if (s["figure"] or s["formula"]) and s not in chosen and len(chosen) < SHOTS_PER_DECK:
            chosen.append(s)
    return chosen


@pytest.fixture(scope="module")
def decks(tmp_path_factory, load_script):
    """Build every deck and measure it in one headless Chromium: {deck: {...}}."""
    if not chromium_path():
        pytest.skip("no Chromium: `apt-get install chromium` (Debian) to run the slide test")
    build_slides = load_script("scripts/build_slides.py")
    missing = build_slides.missing_assets()
    if missing:
        pytest.skip(f"no local reveal.js and friends ({missing[0]} is missing): run `npm install` at the repo root")
    pytest.importorskip("websocket", reason="the slide test drives Chromium with websocket-client")

    t0 = time.monotonic()
    tmp = tmp_path_factory.mktemp("slides")
    browser = Browser(tmp / "chromium-profile")   # a fresh profile
    results = {}
    try:
        for notebook in NOTEBOOKS:
            deck, t_deck = notebook.stem, time.monotonic()
            html = build_slides.build(notebook, tmp / "decks")
            t_built = time.monotonic()
            page = browser.page(WIDTH, HEIGHT)
            page.goto(html.as_uri())
            _wait_ready(page, deck)
            r = {"html": html, "total": page.js("Reveal.getTotalSlides()"),
                 "expected": expected_slide_count(notebook),
                 "notes_plugin": page.js("Reveal.hasPlugin('notes')"),
                 "formulas": page.js("document.querySelectorAll('.slides script[type^=\"math/tex\"]').length"),
                 "slides": page.js(MEASURE_JS)}
            shots = SHOTS / deck
            shots.mkdir(parents=True, exist_ok=True)
            for old in shots.glob("*.png"):
                old.unlink()
            r["shots"] = []
            for s in _screenshot_choice(r["slides"]):
                page.js(f"Reveal.slide({s['h']}, {s['v']}, 1e6)")
                _math_idle(page, deck)
                r["shots"].append(page.screenshot(shots / f"slide{s['number']:02d}_h{s['h']}v{s['v']}.png"))
            r["urls"] = page.requested_urls()
            page.close()

            # the math slide with the most formulas, opened directly by its URL
            math = [s for s in r["slides"] if s["math"]]
            if math:
                target = max(math, key=lambda s: (s["formula"], s["math"], s["number"]))
                page = browser.page(WIDTH, HEIGHT)
                page.goto(f"{html.as_uri()}#/{target['h']}/{target['v']}")
                _wait_ready(page, f"{deck} opened at #/{target['h']}/{target['v']}")
                r["direct"] = {"slide": target, **page.js(MATH_CHECK_JS),
                               "at": page.js("(() => { const i = Reveal.getIndices(); return [i.h, i.v || 0]; })()")}
                page.screenshot(shots / f"direct_h{target['h']}v{target['v']}.png")
                page.close()
            r["seconds"] = (t_built - t_deck, time.monotonic() - t_built)
            results[deck] = r
        results["_seconds"] = time.monotonic() - t0
        yield results
    finally:
        browser.close()


def _deck(decks, notebook):
    if notebook.stem not in decks:
        pytest.fail(f"{notebook.stem} was not measured")
    return decks[notebook.stem]


DECK_PARAMS = [pytest.param(nb, id=nb.stem) for nb in NOTEBOOKS]


@pytest.mark.parametrize("notebook", DECK_PARAMS)
def test_deck_starts_offline_with_its_slides(decks, notebook):
    r = _deck(decks, notebook)
    html = r["html"].read_text(encoding="utf-8")
    assert "unpkg.com/reveal.js" not in html and "node_modules/reveal.js/dist/reveal.js" in html, \
        "the slides must load the local reveal.js, not a CDN copy"
    assert r["total"] == r["expected"], \
        f"reveal.js shows {r['total']} slides, the notebook's metadata asks for {r['expected']}"
    assert r["notes_plugin"], "reveal's notes plugin (speaker view, S) is not loaded"
    online = [u for u in r["urls"] if u.split(":", 1)[0] in ("http", "https", "ws", "wss")]
    assert not online, f"the deck asks the internet for {online[:5]}"
    print(f"{notebook.stem}: {r['total']} slides; screenshots: {', '.join(str(p) for p in r['shots'])}")


@pytest.mark.parametrize("notebook", DECK_PARAMS)
def test_no_slide_taller_than_700px(decks, notebook):
    r = _deck(decks, notebook)
    tall = [s for s in r["slides"] if s["height"] > HEIGHT]
    hidden = [s for s in r["slides"] if s["hidden_fragments"]]
    assert not hidden, "fragments not shown while measuring: " + "; ".join(_label(notebook.stem, s) for s in hidden)
    assert not tall, (f"{len(tall)} of {len(r['slides'])} slides are taller than {HEIGHT} px with all fragments shown "
                      "(split them, shorten them, or hide plot code with the `hide-input` tag):\n"
                      + "\n".join(f"  {_label(notebook.stem, s)}: {s['height']} px" for s in tall))


@pytest.mark.parametrize("notebook", DECK_PARAMS)
def test_figure_and_formula_slides_have_speaker_notes(decks, notebook):
    r = _deck(decks, notebook)
    bare = [s for s in r["slides"] if (s["figure"] or s["formula"]) and not s["notes"]]
    assert not bare, (f"{len(bare)} slides with a figure or formula have no speaker notes (add a markdown "
                      "cell with slide_type \"notes\" after the slide's content):\n"
                      + "\n".join(f"  {_label(notebook.stem, s)}: "
                                  + " and ".join(k for k in ("figure", "formula") if s[k]) for s in bare))


@pytest.mark.parametrize("notebook", DECK_PARAMS)
def test_math_slide_opened_by_url_renders_each_formula_once(decks, notebook):
    r = _deck(decks, notebook)
    if "direct" not in r:
        pytest.skip(f"{notebook.stem} has no formula")
    d = r["direct"]
    where = _label(notebook.stem, d["slide"])
    assert d["at"] == [d["slide"]["h"], d["slide"]["v"]], f"{where}: reveal moved to #/{d['at'][0]}/{d['at'][1]}"
    assert d["formulas"] > 0, f"{where}: opened directly, the slide shows no formula"
    assert not d["doubled"], f"{where}, opened directly: formulas rendered twice or not at all: {d['doubled'][:5]}"
    assert not d["outside"], f"{where}, opened directly: display equations outside the slide: {d['outside']}"
    assert d["all"] == r["formulas"], \
        f"{where}, opened directly: {d['all']} formulas in the deck, {r['formulas']} when opened at the start"


def test_speaker_view_opens_offline_with_the_notes(decks):
    """Press S: reveal's notes plugin opens its speaker view (a pop-up), which shows the notes."""
    with_notes = [(name, s) for name, r in decks.items() if not name.startswith("_")
                  for s in r["slides"] if s["notes"]]
    if not with_notes:
        pytest.skip("no deck has speaker notes yet")
    name, slide = with_notes[-1]
    html = decks[name]["html"]
    browser = Browser(html.parent.parent / "chromium-speaker-view")
    try:
        page = browser.page(WIDTH, HEIGHT)
        page.goto(f"{html.as_uri()}#/{slide['h']}/{slide['v']}")
        _wait_ready(page, name)
        expected = page.js("Reveal.getSlideNotes(Reveal.getCurrentSlide()) || ''")
        assert expected.strip(), f"{_label(name, slide)}: reveal finds no notes"
        page.send("Runtime.evaluate", {"expression": "Reveal.getPlugin('notes').open()", "userGesture": True})
        deadline, view = time.monotonic() + 30, None
        while view is None and time.monotonic() < deadline:
            targets = browser.send("Target.getTargets")["targetInfos"]
            view = next((t for t in targets if t["type"] == "page" and "Speaker View" in t.get("title", "")), None)
            time.sleep(0.2)
        assert view, "the speaker view did not open"
        session = browser.send("Target.attachToTarget", {"targetId": view["targetId"], "flatten": True})["sessionId"]
        probe = ("(document.querySelector('.speaker-controls-notes .value') || {}).textContent || ''")
        text, deadline = "", time.monotonic() + 30
        while not text.strip() and time.monotonic() < deadline:
            text = browser.send("Runtime.evaluate", {"expression": probe, "returnByValue": True},
                                session=session)["result"].get("value") or ""
            time.sleep(0.2)
        words = [w for w in expected.split() if w.isalpha()][:3]
        assert text.strip() and all(w in text for w in words), \
            f"the speaker view shows {text[:80]!r}, not the notes of {_label(name, slide)}"
    finally:
        browser.close()


def test_slide_test_time(decks):
    for name, r in decks.items():
        if not name.startswith("_"):
            print(f"{name}: built in {r['seconds'][0]:.1f} s, checked in {r['seconds'][1]:.1f} s")
    print(f"built and checked {len(NOTEBOOKS)} decks in {decks['_seconds']:.0f} s")
