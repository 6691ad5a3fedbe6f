#!/usr/bin/env python
"""Check what a projector shows of each notebook's reveal.js deck: every slide, all fragments shown.

    python scripts/check_slides.py                                   # every notebooks/*.ipynb
    python scripts/check_slides.py notebooks/03_mnist_mlp_gan.ipynb  # one or more decks
    python scripts/check_slides.py --shots /tmp/shots notebooks/01_gaussian_1d.ipynb   # + a PNG per bad slide

Builds each deck with scripts/build_slides.py into a temporary folder, opens it in headless
Chromium at reveal's size, 960x700, goes to every slide as a presenter would (Reveal.slide with
every fragment shown, MathJax re-rendered) and reports, per slide:

* clipped:  a rendered thing that is not (entirely) visible: a line of text (each text node's line
  boxes, by Range.getClientRects), a formula (MathJax output), an image, svg, canvas, or control,
  that lies more than 2 px outside the 960x700 window, or outside the visible box of an ancestor
  that clips its overflow (a slide taller than the screen gets its own hidden scroll bar: what is
  below its box is cut off; so is an output area's content beyond its box). Named by kind (text,
  code, output, formula, image, ...), edge (bottom, right, ...), by how many px, and the first
  clipped words;
* words:    more than 130 words of prose ("about 120"): the markdown text shown on the slide,
  without code, formulas, printed output and speaker notes;
* output:   more than 12 lines of printed output (stdout, stderr, text results), counted as shown,
  i.e. a long line that wraps counts as two. A code cell's source counts neither as prose nor output.

Speaker notes (aside.notes) and reveal's controls, progress bar and slide number are not checked.
Each violation prints as `DECK slide N (#/h/v, "title"): what`, N as shown on the slide (c/t).
Exits 1 if any deck has a violation, 0 otherwise. Needs Debian's `chromium`, `npm install` (the
local reveal.js) and websocket-client. tests/test_slides.py runs the same checks (its functions
are imported from here).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:     # the small Chrome DevTools client lives beside the slide test
    sys.path.insert(0, str(ROOT / "tests"))
from cdp import Browser, chromium_path  # noqa: E402

WIDTH, HEIGHT = 960, 700      # reveal's slide size in the built decks, and the window
TOLERANCE_PX = 2              # how far outside the visible box a thing may reach (anti-aliasing, borders)
MAX_WORDS = 130               # "about 120" words of prose per slide
MAX_OUTPUT_LINES = 12         # lines of printed output per slide, as shown (wrapped lines count)

# In the page: wait for reveal.js, then for MathJax's start-up typeset and everything queued after it.
READY_JS = "!!(window.Reveal && Reveal.isReady && Reveal.isReady() && window.MathJax && MathJax.Hub)"
MATH_IDLE_JS = """!!(MathJax.isReady && !MathJax.Hub.queue.pending && !MathJax.Hub.queue.running
                     && !MathJax.Hub.queue.queue.length)"""

# In the page: go to every slide with all its fragments shown, wait for its formulas to be re-rendered,
# and measure what is visible. One object per slide (see measure()).
MEASURE_JS = r"""(async (TOL) => {
  const VIEW = {left: 0, top: 0, right: innerWidth, bottom: innerHeight};
  const container = document.querySelector('.reveal .slides');
  const MATH = '.MathJax_Preview, .MJX_Assistive_MathML, .MathJax_CHTML, .mjx-chtml, .MathJax_Display, '
             + '.MathJax';
  const SKIP_TEXT = 'script, style, aside.notes, a.anchor-link, .jp-InputPrompt, .jp-OutputPrompt, ' + MATH;
  const NOT_PROSE = SKIP_TEXT + ', code, pre, kbd, samp';
  const words = t => t.split(/\s+/).filter(w => /[\p{L}\p{N}]/u.test(w));
  const short = t => t.trim().split(/\s+/).slice(0, 12).join(' ');
  const math_idle = () => new Promise(r => MathJax.Hub.Queue(r));
  await Promise.all([...document.images].map(i => i.decode ? i.decode().catch(() => null) : null));
  // a fragment fades in (CSS transition): measure the end state, not the first frame of the fade
  const still = document.createElement('style');
  still.textContent = '.reveal *, .reveal *::before, .reveal *::after '
                      + '{ transition: none !important; animation: none !important; }';
  document.head.appendChild(still);
  // MathJax's pauses between sections and output chunks only let the screen update: without them the
  // re-render of each slide (reveal's slidechanged) runs at once, ~200 ms less per math slide
  const chtml = MathJax.OutputJax.CommonHTML;
  const pauses = [MathJax.Hub.processSectionDelay, chtml && chtml.config.EqnChunkDelay];
  MathJax.Hub.processSectionDelay = 0;
  if (chtml) chtml.config.EqnChunkDelay = 0;

  const out = [];
  const slides = Reveal.getSlides();
  for (let i = 0; i < slides.length; i++) {
    const s = slides[i], idx = Reveal.getIndices(s);
    const fragments = s.querySelectorAll('.fragment').length;
    Reveal.slide(idx.h, idx.v, fragments ? fragments - 1 : undefined);
    if (s.querySelector('script[type^="math/tex"]')) await math_idle();   // reveal's slidechanged re-render

    // the box in which a descendant of el can be seen: the window, cut by every ancestor that clips
    const clips = new Map();
    const clipOf = el => {
      if (!el || el === container || el === document.body) return VIEW;
      if (clips.has(el)) return clips.get(el);
      let box = clipOf(el.parentElement);
      const cs = getComputedStyle(el);
      if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible') {
        const r = el.getBoundingClientRect();
        box = {...box};
        if (cs.overflowX !== 'visible') {
          box.left = Math.max(box.left, r.left); box.right = Math.min(box.right, r.right);
        }
        if (cs.overflowY !== 'visible') {
          box.top = Math.max(box.top, r.top); box.bottom = Math.min(box.bottom, r.bottom);
        }
      }
      clips.set(el, box);
      return box;
    };
    // how far r sticks out of box, per edge (only edges beyond the tolerance)
    const outside = (r, box) => {
      const o = {bottom: r.bottom - box.bottom, right: r.right - box.right,
                 top: box.top - r.top, left: box.left - r.left};
      return Object.fromEntries(Object.entries(o).filter(([, v]) => v > TOL));
    };
    // not display:none, not visibility:hidden, not in a closed <details> (content-visibility: hidden)
    const shown = el => el.checkVisibility({visibilityProperty: true});
    const kindOf = el => el.closest('.jp-OutputArea-output') ? 'output'
      : el.closest('.jp-CodeCell .jp-InputArea') ? 'code'
      : el.closest('h1, h2, h3, h4, h5, h6') ? 'heading' : el.closest('table') ? 'table'
      : el.closest('pre, code') ? 'code in text' : 'text';
    const clipped = [];   // {kind, edges: {edge: px}, text}
    const report = (kind, edges, text) => clipped.push({kind, edges, text});

    // text: every line box of every text node
    const range = document.createRange();
    const walker = document.createTreeWalker(s, NodeFilter.SHOW_TEXT);
    const texts = [];
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.data.trim() || n.parentElement.closest(SKIP_TEXT) || !shown(n.parentElement)) continue;
      texts.push(n);
      range.selectNodeContents(n);
      const box = clipOf(n.parentElement);
      const sticksOut = r => r.width > 0 && r.height > 0 && Object.keys(outside(r, box)).length;
      if (![...range.getClientRects()].some(sticksOut)) continue;
      // a line box sticks out: which words do (white space hanging at the end of a line does not count)
      let from = -1, edges = {};
      for (const m of n.data.matchAll(/\S+/g)) {
        range.setStart(n, m.index); range.setEnd(n, m.index + m[0].length);
        for (const r of range.getClientRects()) {
          if (!(r.width > 0 && r.height > 0)) continue;
          const o = outside(r, box);
          for (const k in o) edges[k] = Math.max(edges[k] || 0, o[k]);
          if (from < 0 && Object.keys(o).length) from = m.index;
        }
      }
      if (from >= 0) report(kindOf(n.parentElement), edges, n.data.slice(from));
    }
    // formulas, pictures, controls
    const things = '.MathJax_CHTML > .mjx-math, img, svg, canvas, video, iframe, object, embed, '
                 + 'button, input, select, textarea';
    for (const el of s.querySelectorAll(things)) {
      if (el.closest('aside.notes, .MJX_Assistive_MathML') || el.parentElement.closest('svg') || !shown(el)) continue;
      const r = el.getBoundingClientRect();
      if (!(r.width > 0 && r.height > 0)) continue;
      const edges = outside(r, clipOf(el.parentElement));
      if (!Object.keys(edges).length) continue;
      if (el.classList.contains('mjx-math')) {
        const script = document.getElementById(el.parentElement.id.replace(/-Frame$/, ''));
        report('formula', edges, '$' + (script ? script.textContent.trim() : '?') + '$');
      } else {
        const tag = el.tagName.toLowerCase();
        const kind = tag === 'img' ? 'image' : ['svg', 'canvas', 'video'].includes(tag) ? 'figure'
          : ['iframe', 'object', 'embed'].includes(tag) ? 'embedded' : 'control';
        report(kind, edges, (el.getAttribute('alt') || el.getAttribute('title') || '') +
               ` (${tag} ${Math.round(r.width)}x${Math.round(r.height)} px)`);
      }
    }
    for (const c of clipped) {
      c.text = short(c.text).slice(0, 90);
      for (const k in c.edges) c.edges[k] = Math.round(c.edges[k]);
    }

    // prose: the markdown text shown (not in a closed <details>), blocks joined by a space
    let prose = '', block = null;
    for (const n of texts) {
      const p = n.parentElement;
      if (!p.closest('.jp-MarkdownCell') || p.closest(NOT_PROSE)) continue;
      let b = p;
      while (b !== s && getComputedStyle(b).display.startsWith('inline')) b = b.parentElement;
      prose += (b === block ? '' : ' ') + n.data;
      block = b;
    }
    // printed output: line boxes shown in each text output (stdout, stderr, text/plain)
    let lines = 0, printed = 0;
    const outputs = [];
    for (const o of s.querySelectorAll('.jp-RenderedText')) {
      if (o.closest('aside.notes') || !o.textContent.trim() || !shown(o)) continue;
      const tops = [];
      const w = document.createTreeWalker(o, NodeFilter.SHOW_TEXT);
      for (let n = w.nextNode(); n; n = w.nextNode()) {
        if (!shown(n.parentElement)) continue;
        range.selectNodeContents(n);
        for (const r of range.getClientRects()) if (r.width > 0 && r.height > 0) tops.push(r.top);
      }
      tops.sort((a, b) => a - b);
      const shownLines = tops.filter((t, j) => j === 0 || t - tops[j - 1] > 3).length;
      lines += shownLines;
      printed += o.textContent.replace(/^\n+|\n+$/g, '').split('\n').length;
      outputs.push(short(o.textContent));
    }

    const content = [...s.querySelectorAll('img, svg, canvas, script[type^="math/tex"]')]
      .filter(e => !e.closest('aside.notes'));
    const notes = [...s.querySelectorAll('aside.notes')].map(a => a.textContent.trim()).join(' ');
    let label = s.querySelector('h1, h2, h3, h4') || s.querySelector('.jp-InputArea-editor') || s;
    label = label.cloneNode(true);
    label.querySelectorAll('script, .MJX_Assistive_MathML, .MathJax_Preview').forEach(e => e.remove());
    out.push({number: i + 1, h: idx.h, v: idx.v || 0, height: s.scrollHeight,
              hidden_fragments: s.querySelectorAll('.fragment:not(.visible)').length,
              clipped, words: words(prose).length, prose: short(prose),
              output_lines: lines, printed_lines: printed, outputs,
              figure: content.some(e => e.tagName !== 'SCRIPT'),
              formula: content.some(e => e.tagName === 'SCRIPT' && e.type.includes('mode=display')),
              math: content.filter(e => e.tagName === 'SCRIPT').length, notes: notes.length,
              title: label.textContent.replace(/\u00b6/g, '').trim().split('\n')[0].slice(0, 50)});
  }
  Reveal.slide(0, 0);
  await math_idle();
  still.remove();
  MathJax.Hub.processSectionDelay = pauses[0];
  if (chtml) chtml.config.EqnChunkDelay = pauses[1];
  return out;
})"""


def math_idle(page, what, timeout=60):
    """MathJax has typeset everything, and what was queued after (twice in a row: a re-render may follow)."""
    for _ in range(2):
        assert page.wait_for(MATH_IDLE_JS, timeout=timeout), f"{what}: MathJax did not finish"
        time.sleep(0.2)


def wait_ready(page, what):
    """reveal.js and MathJax have started and MathJax's start-up typeset is done."""
    assert page.wait_for(READY_JS, timeout=120), f"{what}: reveal.js or MathJax did not start"
    math_idle(page, what)


def measure(page):
    """Every slide of the deck open in `page` (ready), with all fragments shown: a list of dicts with
    number (as shown, 1-based), h, v, title, clipped (list of {kind, edges {edge: px}, text}), words,
    prose, output_lines (as shown), printed_lines (as printed), outputs, height (scrollHeight),
    hidden_fragments, figure, formula, math (count), notes (length of the speaker notes)."""
    return page.js(f"{MEASURE_JS}({TOLERANCE_PX})", timeout=300)


def label(deck, s):
    """How a slide is named in messages: DECK slide N (#/h/v, "title")."""
    return f"{deck} slide {s['number']} (#/{s['h']}/{s['v']}, \"{s['title']}\")"


def clipped_messages(s):
    """One line per kind of clipped thing on slide s: kind, edges, count, first clipped words."""
    by_kind = {}
    for c in s["clipped"]:
        by_kind.setdefault(c["kind"], []).append(c)
    lines = []
    for kind, items in by_kind.items():
        edges = {}
        for c in items:
            for e, px in c["edges"].items():
                edges[e] = max(edges.get(e, 0), px)
        side = {"bottom": "below", "top": "above", "right": "right of", "left": "left of"}
        where = ", ".join(f"{px} px {side[e]}" for e, px in edges.items())
        many = f" ({len(items)} pieces)" if len(items) > 1 else ""
        lines.append(f"{kind} cut off{many}, up to {where} the visible area: \"{items[0]['text']}\"")
    return lines


def word_message(s):
    if s["words"] > MAX_WORDS:
        return f"{s['words']} words of prose (at most about 120, limit {MAX_WORDS}): \"{s['prose']}\""
    return None


def output_message(s):
    if s["output_lines"] > MAX_OUTPUT_LINES:
        return (f"{s['output_lines']} lines of printed output as shown ({s['printed_lines']} printed; "
                f"limit {MAX_OUTPUT_LINES}): \"{s['outputs'][0] if s['outputs'] else ''}\"")
    return None


def violations(deck, slides):
    """Every violation of the deck, as printable lines."""
    found = []
    for s in slides:
        msgs = clipped_messages(s) + [m for m in (word_message(s), output_message(s)) if m]
        if s["hidden_fragments"]:
            msgs.append(f"{s['hidden_fragments']} fragments were not shown while measuring")
        found += [f"{label(deck, s)}: {m}" for m in msgs]
    return found


def check_deck(browser, html, deck, shots=None):
    """Open the built deck `html` in a new tab, measure every slide; optionally save a screenshot of
    each slide with a violation into `shots`. Returns (slides, violations)."""
    page = browser.page(WIDTH, HEIGHT)
    try:
        page.goto(html.as_uri())
        wait_ready(page, deck)
        slides = measure(page)
        found = violations(deck, slides)
        if shots:
            shots = Path(shots)
            shots.mkdir(parents=True, exist_ok=True)
            bad = {line.split(" (#/")[0] for line in found}
            for s in slides:
                if f"{deck} slide {s['number']}" in bad:
                    page.js(f"Reveal.slide({s['h']}, {s['v']}, 1e6)")
                    math_idle(page, deck)
                    page.screenshot(shots / f"{deck}_slide{s['number']:02d}_h{s['h']}v{s['v']}.png")
        return slides, found
    finally:
        page.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("notebooks", nargs="*", help="default: every notebooks/[0-9]*.ipynb")
    parser.add_argument("--shots", help="save a screenshot of every slide with a violation into this folder")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "scripts"))
    import build_slides

    if not chromium_path():
        sys.exit("no Chromium: `apt-get install chromium` (Debian)")
    missing = build_slides.missing_assets()
    if missing:
        sys.exit(f"Missing {', '.join(missing)}: run `npm install` in {ROOT} first.")
    notebooks = [Path(p) for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    total = 0
    with tempfile.TemporaryDirectory(prefix="check_slides_") as tmp:
        browser = Browser(Path(tmp) / "chromium-profile")
        try:
            for nb in notebooks:
                t0 = time.monotonic()
                html = build_slides.build(nb, Path(tmp) / "decks")
                slides, found = check_deck(browser, html, nb.stem, args.shots)
                print(f"{nb.stem}: {len(slides)} slides, {len(found)} violations "
                      f"({time.monotonic() - t0:.0f} s)", flush=True)
                for line in found:
                    print("  " + line, flush=True)
                total += len(found)
        finally:
            browser.close()
    print(f"{total} violations" if total else "all slides fit")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
