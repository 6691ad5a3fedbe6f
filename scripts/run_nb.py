"""Execute a notebook with nbclient (a copy of the course tools' run_nb.py, so that
scripts/gpu_check.sh needs nothing outside the repository).

usage: python run_nb.py IN.ipynb OUT.ipynb [--sub 'OLD=>NEW' ...] [--append CODE ...] [--timeout S]
Prints each code cell's wall time and any error; exits 1 on the first error.
"""
import argparse
import signal
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--sub", action="append", default=[])
    ap.add_argument("--append", action="append", default=[])
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--kernel", default="python3")
    a = ap.parse_args()
    nb = nbformat.read(a.src, as_version=4)
    for rule in a.sub:
        old, new = rule.split("=>", 1)
        hits = [c for c in nb.cells if c.cell_type == "code" and old in c.source]
        if not hits:
            sys.exit(f"--sub: {old!r} not found")
        for c in hits:
            c.source = c.source.replace(old, new)
    for code in a.append:
        nb.cells.append(nbformat.v4.new_code_cell(code))
    client = NotebookClient(nb, timeout=a.timeout, kernel_name=a.kernel, allow_errors=False)
    t_all = time.time()
    rc = 0

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        with client.setup_kernel():
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                t = time.time()
                try:
                    client.execute_cell(cell, i)
                except CellExecutionError as e:
                    print(f"cell {i}: ERROR after {time.time() - t:.1f}s\n{str(e)[-3000:]}")
                    rc = 1
                    break
                dt = time.time() - t
                if dt > 2:
                    print(f"cell {i}: {dt:.1f}s  {cell.source.splitlines()[0][:80] if cell.source else ''}")
    except KeyboardInterrupt:
        print(f"cell {i}: STOPPED by a signal after {time.time() - t:.1f}s")
        rc = 2
    print(f"TOTAL {time.time() - t_all:.1f}s rc={rc}")
    nbformat.write(nb, a.dst)
    sys.exit(rc)


if __name__ == "__main__":
    main()
