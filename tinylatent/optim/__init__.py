"""Optimizers (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, SAM) and learning-rate
schedulers, PyTorch semantics.

    opt = tl.optim.Adam(model.parameters(), lr=1e-3)
    sched = tl.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss.backward(); opt.step(); opt.zero_grad(); sched.step()
"""
from . import lr_scheduler
from .adagrad import Adadelta, Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sam import SAM
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "SAM",
           "lr_scheduler"]
