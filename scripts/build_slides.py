#!/usr/bin/env python
"""Build reveal.js slides of every notebook into slides/, for offline presenting.

    npm install                      # once: reveal.js 4, require.js, jQuery, MathJax 2, Font Awesome 4 into node_modules/
    python scripts/build_slides.py   # all notebooks -> slides/<name>.slides.html
    python scripts/build_slides.py notebooks/01_gaussian_1d.ipynb --out /tmp/slides

Each cell's `slideshow.slide_type` metadata decides where it goes (slide, subslide, fragment, skip,
notes). Code cells tagged `hide-input` show only their output (nbconvert's TagRemovePreprocessor);
the notebook, and RISE, keep the code. Markdown cells of type `notes` are the speaker notes: press S
in the slides for reveal's speaker view (its notes plugin is loaded from node_modules too).
Everything the slides load comes from node_modules/ (relative links), so they open from the file
system without internet. Open slides/<name>.slides.html in a browser. To present live instead,
use RISE in JupyterLab (Ctrl+R in a notebook).

MathJax on direct load: nbconvert's reveal template calls `MathJax.Hub.Rerender(slide)` straight
from reveal's `slidechanged` event. Opened at `#/15` (a reload in the middle of a talk) that event
fires while MathJax 2's start-up typeset is still running, and the two passes both write into the
same output: every inline formula shows twice, and a display equation twice side by side, off the
slide. Here the re-render goes through MathJax's queue, so it runs after the typeset has finished.
"""
import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
# what nbconvert's reveal template loads, and where npm puts a local copy
LOCAL_ASSETS = {
    "reveal_url_prefix": "reveal.js",
    "require_js_url": "requirejs/require.js",
    "jquery_url": "jquery/dist/jquery.min.js",
    "mathjax_url": "mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
}
# matplotlib's animations (to_jshtml) link Font Awesome 4 from a CDN for their buttons: use the local copy
FONT_AWESOME_CDN = "https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/css/font-awesome.min.css"
FONT_AWESOME_LOCAL = "font-awesome/css/font-awesome.min.css"


def missing_assets(node_modules=NODE_MODULES):
    """The local files the slides need that are not installed (empty when `npm install` was run)."""
    needed = [node_modules / "reveal.js/dist/reveal.js", node_modules / "requirejs/require.js",
              node_modules / "reveal.js/plugin/notes/notes.js",
              node_modules / "jquery/dist/jquery.min.js", node_modules / "mathjax/MathJax.js",
              node_modules / "font-awesome/css/font-awesome.min.css"]
    return [str(p) for p in needed if not p.is_file()]


# Slide-only tweaks: wrap long code lines instead of cutting them off, hide the In/Out prompts
# (more room for code), and drop the nbval marker comment, which means nothing to an audience.
SLIDE_CSS = """<style>
.reveal pre { white-space: pre-wrap; word-break: break-word; }
.reveal .jp-InputPrompt, .reveal .jp-OutputPrompt { display: none; }
.reveal .jp-Cell-inputWrapper .highlight pre, .reveal .jp-OutputArea-output pre { font-size: 0.8em; }
.reveal .jp-OutputArea-output table { font-size: 0.8em; }   /* long result tables fit one slide */
.reveal .animation img { width: 420px; max-width: 100%; height: auto; }
</style>
"""
NBVAL_MARKER = '<span class="c1"># NBVAL_CHECK_OUTPUT</span>\n'


HIDE_INPUT_TAG = "hide-input"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

# nbconvert's reveal template with three changes for offline presenting: no CDN links (mermaid, the
# widget manager), `window.Reveal` for the console and the slide test, and MathJax re-renders that
# wait in MathJax's queue (see the module docstring).
TEMPLATE_NAME = "offline_slides.html.j2"
TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{% block html_head_js_mermaidjs %}{% endblock html_head_js_mermaidjs %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block footer_js %}
<script>
require({waitSeconds: 30},
  ["{{ reveal_url_prefix }}/dist/reveal.js", "{{ reveal_url_prefix }}/plugin/notes/notes.js"],
  function (Reveal, RevealNotes) {
    window.Reveal = Reveal;
    Reveal.initialize({
      controls: true, progress: true, history: true, hash: true,
      transition: "{{ reveal_transition }}", slideNumber: "{{ reveal_number }}",
      width: {{ reveal_width }}, height: {{ reveal_height }},
      plugins: [RevealNotes]   // press S: speaker view with the "notes" cells
    });
    // Typeset math that sat in a hidden slide again once it is shown, but only after MathJax's
    // own start-up typeset: calling Rerender directly races it and doubles every formula.
    function rerenderMath(event) {
      var slide = event.currentSlide;
      if (window.MathJax && MathJax.Hub && slide && slide.querySelector('script[type^="math/tex"]')) {
        MathJax.Hub.Queue(["Rerender", MathJax.Hub, slide]);
      }
    }
    Reveal.on("ready", rerenderMath);
    Reveal.on("slidechanged", rerenderMath);
    function setScrollingSlide() {  // a slide taller than the screen scrolls instead of being cut
      if ({{ reveal_scroll }} === true) {
        var h = $(".reveal").height() * 0.95;
        $("section.present").find("section").filter(function () { return $(this).height() > h; })
          .css("height", "calc(95vh)").css("overflow-y", "scroll").css("margin-top", "20px");
      }
    }
    Reveal.on("slidechanged", setScrollingSlide);
  });
</script>
{% endblock footer_js %}
"""


def exporter(rel):
    """nbconvert's SlidesExporter with the local assets at relative path `rel` and hidden inputs."""
    from jinja2 import DictLoader
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    c = Config()
    for key, value in LOCAL_ASSETS.items():
        setattr(c.SlidesExporter, key, f"{rel}/{value}")
    c.SlidesExporter.reveal_scroll = True
    c.SlidesExporter.reveal_theme = "white"
    c.SlidesExporter.reveal_transition = "none"
    c.SlidesExporter.reveal_number = "c/t"   # slide number / total, as the slide test counts them
    c.SlidesExporter.template_file = TEMPLATE_NAME
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_input_tags = {HIDE_INPUT_TAG}
    return SlidesExporter(config=c, extra_loaders=[DictLoader({TEMPLATE_NAME: TEMPLATE})])


def build(notebook, out_dir=ROOT / "slides", node_modules=NODE_MODULES):
    """Convert one notebook to <out_dir>/<name>.slides.html with links to the local assets. Returns the path."""
    import nbformat

    notebook, out_dir = Path(notebook).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    rel = Path(os.path.relpath(node_modules, out_dir)).as_posix()
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:   # widgets need a kernel: offline slides show their static outputs only
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if WIDGET_VIEW not in o.get("data", {})]
    nb.metadata.pop("widgets", None)
    html, _ = exporter(rel).from_notebook_node(nb, resources={"metadata": {"name": notebook.stem}})
    html = html.replace(NBVAL_MARKER, "").replace(FONT_AWESOME_CDN, f"{rel}/{FONT_AWESOME_LOCAL}")
    head = f'<link rel="stylesheet" href="{rel}/{FONT_AWESOME_LOCAL}">\n' + SLIDE_CSS
    html_path = out_dir / f"{notebook.stem}.slides.html"
    html_path.write_text(html.replace("</head>", head + "</head>", 1), encoding="utf-8")
    return html_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="default: every notebooks/*.ipynb")
    parser.add_argument("--out", default=str(ROOT / "slides"), help="output folder (default: slides/)")
    args = parser.parse_args(argv)
    missing = missing_assets()
    if missing:
        sys.exit(f"Missing {', '.join(missing)}: run `npm install` in {ROOT} first (needs the npm registry once).")
    notebooks = args.notebooks or sorted(str(p) for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    for nb in notebooks:
        print(build(nb, args.out))


if __name__ == "__main__":
    main()
