"""`tinylatent.utils.data` is `tinylatent.data` (PyTorch's `torch.utils.data` spelling), so
`from tinylatent.utils.data import DataLoader` ports unchanged."""
from __future__ import annotations

import sys

from .. import data

sys.modules[__name__ + ".data"] = data   # `import tinylatent.utils.data` finds the alias

__all__ = ["data"]
