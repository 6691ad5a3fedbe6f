"""What the experiment scripts share: their results files, JSON written atomically (a reader, or a run killed while
it writes, finds the old file or the new one, never a part). A script imports it with `from common import ...`."""
import json
from pathlib import Path

from gan_utils.checkpoints import save_atomic


def write_json(path, obj, indent=1):
    """Write `obj` as JSON to `path` atomically."""
    return save_atomic(Path(path), lambda f: f.write(json.dumps(obj, indent=indent).encode()))


def read_json(path, default=None):
    """The JSON content of `path` (`default` when there is no file); ValueError naming a damaged file."""
    path = Path(path)
    if default is not None and not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}): restore it (e.g. git checkout it) or delete it") from None
