"""Running examples/<name>.py from a test: import it as a module and call its main(argv)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    """examples/<name>.py imported as the module `<name>_example`."""
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_bytes: int = 2000):
    """`path` is a PNG file with some content (the pictures an example writes)."""
    assert path.is_file(), f"{path.name} was not written"
    blob = path.read_bytes()
    assert blob[:8] == PNG_MAGIC and len(blob) > min_bytes, path
