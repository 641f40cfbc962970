"""Neural-network building blocks: Module, Parameter, containers, layers, init, functional.

    import tinylatent.nn as nn
    model = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 20))

Files: module.py (Module, Parameter, containers), linear.py, conv.py, pooling.py,
normalization.py, dropout.py, embedding.py, activation.py, attention.py, recurrent.py,
transformer.py, loss.py (loss modules), init.py (initializers), functional.py (stateless
forms, as F), utils.py (gradient clipping, parameter vectors).
"""
from __future__ import annotations

from . import functional, init, utils
from .activation import (ELU, GELU, Hardtanh, LeakyReLU, LogSigmoid, LogSoftmax, ReLU, ReLU6,
                         Sigmoid, SiLU, Softmax, Softplus, Tanh)
from .attention import MultiheadAttention
from .conv import Conv1d, Conv2d, ConvTranspose2d
from .dropout import Dropout, Dropout2d
from .embedding import Embedding
from .linear import Flatten, Identity, Linear, Unflatten
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, KLDivLoss, L1Loss, MSELoss,
                   NLLLoss, SmoothL1Loss, TripletMarginLoss)
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential
from .normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, InstanceNorm1d,
                            InstanceNorm2d, LayerNorm)
from .padding import (CircularPad2d, ConstantPad1d, ConstantPad2d, PixelShuffle,
                      PixelUnshuffle, ReflectionPad1d, ReflectionPad2d, ReplicationPad1d,
                      ReplicationPad2d, ZeroPad2d)
from .pooling import (AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d,
                      Upsample)
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                          TransformerEncoder, TransformerEncoderLayer)

__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "ModuleDict",
           "Linear", "Identity", "Flatten", "Unflatten",
           "Conv1d", "Conv2d", "ConvTranspose2d",
           "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool2d", "Upsample",
           "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm1d",
           "InstanceNorm2d", "Dropout", "Dropout2d", "Embedding",
           "ReflectionPad1d", "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d",
           "ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "CircularPad2d", "PixelShuffle",
           "PixelUnshuffle",
           "ReLU", "LeakyReLU", "ELU", "GELU", "Tanh", "Sigmoid", "Softplus", "SiLU",
           "LogSigmoid", "Softmax", "LogSoftmax", "Hardtanh", "ReLU6", "BatchNorm3d",
           "MultiheadAttention", "RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU",
           "TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer",
           "TransformerDecoder", "Transformer",
           "MSELoss", "L1Loss", "SmoothL1Loss", "BCELoss", "BCEWithLogitsLoss",
           "CrossEntropyLoss", "NLLLoss", "KLDivLoss", "TripletMarginLoss",
           "functional", "init", "utils"]

# Data-parallel training over processes (DistributedDataParallel, SyncBatchNorm): needs a
# process group from tinylatent.distributed only when used.
from . import parallel  # noqa: E402
from .parallel import DataParallel, SyncBatchNorm  # noqa: E402

__all__ += ["SyncBatchNorm", "DataParallel", "parallel"]

from . import modules  # noqa: E402  (PyTorch's torch.nn.modules.<file> paths)
