#!/usr/bin/env python
"""Build reveal.js slides of every notebook into slides/, for offline presenting.

    npm install                      # once: reveal.js 4, require.js, jQuery, MathJax 2, Font Awesome 4 into node_modules/
    python scripts/build_slides.py   # all notebooks -> slides/<name>.slides.html
    python scripts/build_slides.py notebooks/01_gaussian_1d.ipynb --out /tmp/slides

Each cell's `slideshow.slide_type` metadata decides where it goes (slide, subslide, fragment, skip,
notes). Everything the slides load comes from node_modules/ (relative links), so they open from
the file system without internet. Open slides/<name>.slides.html in a browser; press S for
speaker notes. To present live instead, use RISE in JupyterLab (Ctrl+R in a notebook).
"""
import argparse
import os
import subprocess
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
              node_modules / "jquery/dist/jquery.min.js", node_modules / "mathjax/MathJax.js",
              node_modules / "font-awesome/css/font-awesome.min.css"]
    return [str(p) for p in needed if not p.is_file()]


# Slide-only tweaks: wrap long code lines instead of cutting them off, hide the In/Out prompts
# (more room for code), and drop the nbval marker comment, which means nothing to an audience.
SLIDE_CSS = """<style>
.reveal pre { white-space: pre-wrap; word-break: break-word; }
.reveal .jp-InputPrompt, .reveal .jp-OutputPrompt { display: none; }
.reveal .jp-Cell-inputWrapper .highlight pre, .reveal .jp-OutputArea-output pre { font-size: 0.8em; }
.reveal .animation img { width: 540px; max-width: 100%; height: auto; }
</style>
"""
NBVAL_MARKER = '<span class="c1"># NBVAL_CHECK_OUTPUT</span>\n'


def build(notebook, out_dir=ROOT / "slides", node_modules=NODE_MODULES):
    """Convert one notebook to <out_dir>/<name>.slides.html with links to the local assets. Returns the path."""
    notebook, out_dir = Path(notebook).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    rel = Path(os.path.relpath(node_modules, out_dir)).as_posix()
    options = [f"--SlidesExporter.{key}={rel}/{value}" for key, value in LOCAL_ASSETS.items()]
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "slides", str(notebook),
                    "--output-dir", str(out_dir), "--SlidesExporter.reveal_scroll=True",
                    "--SlidesExporter.reveal_theme=white", "--SlidesExporter.reveal_transition=none",
                    *options], check=True, cwd=ROOT, capture_output=True, text=True)
    html_path = out_dir / f"{notebook.stem}.slides.html"
    html = html_path.read_text(encoding="utf-8").replace(NBVAL_MARKER, "")
    html = html.replace(FONT_AWESOME_CDN, f"{rel}/{FONT_AWESOME_LOCAL}")
    head = f'<link rel="stylesheet" href="{rel}/{FONT_AWESOME_LOCAL}">\n' + SLIDE_CSS
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
