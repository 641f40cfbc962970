"""Neural-network building blocks: Module, Parameter, containers, layers, init, functional.

    import tinylatent.nn as nn
    model = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 20))
"""
from __future__ import annotations

from . import functional, init
from .activation import (ELU, GELU, LeakyReLU, LogSigmoid, LogSoftmax, ReLU, Sigmoid, SiLU,
                         Softmax, Softplus, Tanh)
from .dropout import Dropout
from .linear import Flatten, Identity, Linear, Unflatten
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential

__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "ModuleDict",
           "Linear", "Identity", "Flatten", "Unflatten", "Dropout",
           "ReLU", "LeakyReLU", "ELU", "GELU", "Tanh", "Sigmoid", "Softplus", "SiLU",
           "LogSigmoid", "Softmax", "LogSoftmax",
           "functional", "init"]
