"""PyTorch's internal module paths (torch.nn.modules.linear.Linear, ...), for code that
imports layers from there (`from torch.nn.modules.loss import _Loss` style). Each submodule
holds the same classes as tinylatent.nn; the layers themselves live in nn/*.py."""
from __future__ import annotations

import sys
import types

from .. import (activation, attention, conv, dropout, embedding, linear, loss, module,
                normalization, padding, pooling, recurrent, transformer)

# submodule name in PyTorch -> the tinylatent.nn modules whose public names it gathers
_LAYOUT = {
    "module": [module], "container": [module], "activation": [activation, attention],
    "linear": [linear], "conv": [conv], "pooling": [pooling], "dropout": [dropout],
    "sparse": [embedding], "normalization": [normalization], "batchnorm": [normalization],
    "instancenorm": [normalization], "rnn": [recurrent], "transformer": [transformer],
    "loss": [loss], "padding": [padding], "pixelshuffle": [padding], "flatten": [linear],
}

__all__ = sorted(_LAYOUT)

for _name, _sources in _LAYOUT.items():
    _sub = types.ModuleType(f"{__name__}.{_name}",
                            f"torch.nn.modules.{_name}'s names in tinylatent")
    for _src in _sources:
        for _attr in getattr(_src, "__all__", ()):
            setattr(_sub, _attr, getattr(_src, _attr))
    sys.modules[_sub.__name__] = _sub
    globals()[_name] = _sub

# PyTorch's attention projection is a Linear subclass that only disables quantization
globals()["linear"].NonDynamicallyQuantizableLinear = linear.Linear
