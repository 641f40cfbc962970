"""Reverse-mode automatic differentiation.

The whole machinery is here: `Function` (an op: forward on raw arrays, backward in Tensor
ops), `Context` (what a forward keeps for its backward; it is also the graph node), the
iterative backward pass, `grad`, grad modes, `hvp` and `jacobian`.

How a graph is built. `SomeOp.apply(*args)` unwraps Tensor arguments into arrays, runs
`forward(ctx, *arrays)` and wraps the result. If grad mode is on and any input requires grad,
the result remembers `ctx`, and `ctx.inputs` remembers the input Tensors: that is the graph.

How backward runs. We sort the nodes reachable from the output topologically with an
explicit stack (micrograd recurses; a chain of 100,000 ops would overflow Python's stack),
then visit them outputs-first, calling each `backward(ctx, grad_output)`. Gradients of
broadcast inputs are summed back to the input's shape in exactly one place, `unbroadcast`.

Because backward rules are themselves written in Tensor ops, running them with grad mode on
(`create_graph=True`) records a graph of the backward pass, which can be differentiated
again: that is all higher-order derivatives take.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import weakref
from typing import Callable

import numpy as np

__all__ = [
    "Function", "Context", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
    "grad", "backward", "hvp", "jacobian", "unbroadcast",
    "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled", "AnomalyError",
    "register_post_accumulate_grad_hook", "queue_callback",
]


# Set by anomaly.py while anomaly mode is on: called after every backward rule. None (the
# default) costs the backward pass one local test per node.
_anomaly_backward_check = None


# ----------------------------------------------------------------------------- grad mode
class _GradMode(threading.local):
    enabled = True


_mode = _GradMode()


def is_grad_enabled() -> bool:
    return _mode.enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager / decorator that sets grad mode on or off, restoring it on exit."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev: list[bool] = []

    def __enter__(self):
        self.prev.append(_mode.enabled)
        _mode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _mode.enabled = self.prev.pop()
        return False


class _FixedGradMode(set_grad_enabled):
    """A grad mode usable as `with m():`, `@m()` and bare `@m` (as PyTorch allows)."""

    mode = True

    def __new__(cls, func=None):
        self = super().__new__(cls)
        if func is None:
            return self
        self.__init__()
        return self(func)          # used bare: @tl.no_grad

    def __init__(self, func=None):
        super().__init__(self.mode)


class no_grad(_FixedGradMode):
    """Ops inside record no graph (`with tl.no_grad():`, `@tl.no_grad()` or `@tl.no_grad`)."""

    mode = False


class enable_grad(_FixedGradMode):
    """Turns recording back on inside a `no_grad` region."""

    mode = True


# ----------------------------------------------------------------------------- graph nodes
_OUTPUT = object()  # marks "the op's own output" among saved values


def _root(t):
    """The tensor owning t's memory (t itself unless t is a view): where versions count."""
    while t._base is not None:
        t = t._base
    return t


def _version_owner(t):
    """The tensor whose `_version` counts writes to t's memory, made to hold no graph.

    A view or a `detach()`ed tensor shares its version count with the tensor owning the
    memory. When that owner is a graph node (it has a `_ctx`), pointing at it would keep the
    whole graph alive for as long as the view lives (a list of `loss.detach()` would keep
    every step's activations), so the count moves onto a bare tensor of the same array that
    the owner, and every later view, link to instead.
    """
    root = _root(t)
    if root._ctx is not None:
        store = Tensor._make(root.array)
        store._version = root._version
        root._base = store
        root = store
    return root


class Context:
    """State a forward leaves for its backward; also the node of the graph.

    `save_for_backward(*values)` takes arrays (or scalars). An array that *is* one of the
    op's input arrays is kept as that input Tensor, and the array the forward returns is kept
    as the output Tensor, so that with `create_graph=True` the backward's Tensor ops connect
    to the graph. Anything else (a mask, an index) is kept as a constant.
    Each saved Tensor remembers its version; if it was changed in place before backward,
    `saved_tensors` raises instead of returning a wrong gradient.
    """

    # Defaults live on the class, so making a Context (once per op call) sets two fields.
    inputs: tuple | None = None          # input Tensors (None for non-Tensor args)
    needs_input_grad: tuple = ()
    _raw_saved: tuple = ()
    _saved: list = ()                    # [(kind, value, version)]
    _out_ref = None                      # weak references to the outputs, if one was saved
    n_outputs = 1                        # > 1: forward returned a tuple (see Function)
    output_index: dict = {}              # id(output Tensor) -> its position, if n_outputs > 1
    _out_arrays: tuple = ()              # the outputs' arrays, if n_outputs > 1 and one saved
    freed = False

    def __init__(self, fn: type, xp):
        self.fn = fn
        self.xp = xp

    def save_for_backward(self, *values) -> None:
        self._raw_saved = values

    def _resolve_saved(self, arrays, inputs, raw_outs, out_arrays, out_tensors) -> None:
        resolved = []
        single = len(out_arrays) == 1          # the common case, tested without a loop
        for v in self._raw_saved:
            if single:
                if v is out_arrays[0] or v is raw_outs[0]:
                    out = out_tensors[0]
                    version = (out if out._base is None else _root(out))._version
                    resolved.append((_OUTPUT, 0, version))
                    # weak: the output holds this node, so a strong link would make a cycle
                    self._out_ref = (weakref.ref(out_tensors[0]),)
                    continue
            else:
                found = False
                for i, (raw, arr) in enumerate(zip(raw_outs, out_arrays)):
                    if v is arr or v is raw:
                        resolved.append((_OUTPUT, i, _root(out_tensors[i])._version))
                        self._out_ref = tuple(weakref.ref(t) for t in out_tensors)
                        # an output nobody kept (coupling's y when only logabsdet is used)
                        # may be gone by backward: keep its array (see saved_tensors)
                        self._out_arrays = out_arrays
                        found = True
                        break
                if found:
                    continue
            for a, t in zip(arrays, inputs):
                if v is a and t is not None:
                    resolved.append((t, None, (t if t._base is None else _root(t))._version))
                    break
            else:
                if isinstance(v, np.generic):  # a 0-d result NumPy returned as a scalar
                    v = np.asarray(v)
                resolved.append((None, v, 0))
        self._saved = resolved
        self._raw_saved = ()

    @property
    def saved_tensors(self) -> tuple:
        if self.freed:
            raise RuntimeError(
                f"{self.fn.__name__}.backward: the saved values of this graph were freed by an "
                "earlier backward(); call backward(retain_graph=True) the first time to "
                "backpropagate through the same graph twice")
        out = []
        for kind, value, version in self._saved:
            if kind is None:
                if isinstance(value, self.xp.ndarray):
                    value = Tensor._make(value)
                out.append(value)
                continue
            t = self._out_ref[value]() if kind is _OUTPUT else kind
            if t is None:
                if self.n_outputs == 1:  # pragma: no cover - referenced while reachable
                    raise RuntimeError(f"{self.fn.__name__}.backward: saved output was freed")
                # One of several outputs, dropped by the caller before backward: rebuild it
                # on this node (so create_graph stays connected). A dropped tensor can no
                # longer be changed in place, so its saved version still holds.
                t = Tensor._make(self._out_arrays[value], True, self)
                self.output_index[id(t)] = value
                out.append(t)
                continue
            now = (t if t._base is None else _root(t))._version
            if now != version:
                what = "its output" if kind is _OUTPUT else "an input"
                raise RuntimeError(
                    f"{self.fn.__name__}.backward: {what} of shape {t.shape} saved for the "
                    f"gradient was modified in place (version {version} -> {now}); "
                    "clone() it before changing it, or change it outside the graph")
            out.append(t)
        return tuple(out)

    def release(self) -> None:
        """Free saved values and input references (after a backward without retain_graph)."""
        self._saved = None
        self.inputs = None
        self.freed = True


class Function:
    """Base class of every differentiable op.

    Subclasses define two static methods, next to each other:
        forward(ctx, *inputs, **static) -> array, or a tuple of arrays (several outputs)
            on raw arrays (numpy or cupy), via ctx.xp
        backward(ctx, *grads) -> one gradient (Tensor or None) per positional input,
            in Tensor ops
    and the docstring holds the formula. `apply` is the only entry point.

    Positional arguments are the op's inputs (Tensors, or arrays and None treated as
    constants); static arguments (axes, flags, shapes) are keywords, so a backward returns
    exactly one entry per positional input and nobody counts arguments by hand. A backward
    returning another number of gradients raises an error naming the op.

    Several outputs: when forward returns a tuple, apply returns a tuple of Tensors sharing
    one node, and backward receives one gradient per output, in order; an output no
    gradient reached (unused, or not differentiable like a statistic) gets None.
    """

    @staticmethod
    def forward(ctx: Context, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        # This runs for every op, forward and (under create_graph) backward: keep it lean.
        arrays = []
        requires = False
        atype = None
        for a in args:
            if isinstance(a, Tensor):
                d = a.array
                if atype is None:
                    atype = type(d)
                elif type(d) is not atype:
                    _raise_device_mismatch(cls, args)
                if a.requires_grad:
                    requires = True
                arrays.append(d)
            else:
                arrays.append(a)
        xp = np if (atype is np.ndarray or atype is None) else _xp_of_type(atype)
        ctx = Context(cls, xp)
        try:
            out = cls.forward(ctx, *arrays, **kwargs)
        except ValueError as e:
            if "could not be broadcast" not in str(e):  # (NumPy's wording, not ours)
                raise
            shapes = " and ".join(str(tuple(a.shape)) for a in args if isinstance(a, Tensor))
            raise ValueError(f"{cls.__name__}: shapes {shapes} cannot be broadcast "
                             "together") from None
        if type(out) is tuple:
            return _apply_multi(cls, ctx, args, arrays, out, atype, xp, requires)
        raw_out = out
        if type(out) is not atype:  # NumPy turns 0-d results into scalars; keep arrays
            out = xp.asarray(out)
        if not requires or not _mode.enabled:
            result = Tensor._make(out)
            if out.base is not None:
                _link_view(result, out, args)
            return result
        result = Tensor._make(out, True, ctx)
        if out.base is not None:
            _link_view(result, out, args)
        # _record_inputs, inline: this runs once per recorded op
        ctx.inputs = inputs = tuple([a if isinstance(a, Tensor) else None for a in args])
        ctx.needs_input_grad = tuple([a is not None and a.requires_grad for a in inputs])
        if ctx._raw_saved:
            ctx._resolve_saved(arrays, inputs, (raw_out,), (out,), (result,))
        return result


def _record_inputs(ctx, args) -> tuple:
    inputs = tuple([a if isinstance(a, Tensor) else None for a in args])
    ctx.inputs = inputs
    ctx.needs_input_grad = tuple([a is not None and a.requires_grad for a in inputs])
    return inputs


def _apply_multi(cls, ctx, args, arrays, outs, atype, xp, requires) -> tuple:
    """The rest of Function.apply for a forward that returned a tuple of arrays: one Tensor
    per output, all pointing at the same node; ctx.n_outputs records how many."""
    raw = outs
    outs = tuple(o if type(o) is atype else xp.asarray(o) for o in outs)
    record = requires and _mode.enabled
    results = tuple(Tensor._make(o, True, ctx) if record else Tensor._make(o) for o in outs)
    for r, o in zip(results, outs):
        if o.base is not None:
            _link_view(r, o, args)
    if not record:
        return results
    ctx.n_outputs = len(results)
    ctx.output_index = {id(r): i for i, r in enumerate(results)}
    inputs = _record_inputs(ctx, args)
    if ctx._raw_saved:
        ctx._resolve_saved(arrays, inputs, raw, outs, results)
    return results


def _link_view(result, out, args) -> None:
    """If `out` views an input's memory (reshape, transpose, slicing...), record that input's
    base on `result`, so that in-place changes of either are seen by graphs saving the other
    (the version check in Context.saved_tensors)."""
    base = out.base
    for a in args:
        if isinstance(a, Tensor):
            d = a.array
            if d is base or d.base is base:
                result._base = _version_owner(a)
                return


def _xp_of_type(atype):
    from .backend import array_module_of_type
    return array_module_of_type(atype)


def _raise_device_mismatch(cls, args):
    devs = sorted({str(a.device) for a in args if isinstance(a, Tensor)})
    raise RuntimeError(f"{cls.__name__}: expected all tensors on one device, got "
                       f"{' and '.join(devs)}; move them with .to(device) first")


# ----------------------------------------------------------------------------- broadcasting
def unbroadcast(grad, shape: tuple):
    """Sum `grad` down to `shape`: the one place where broadcasting is undone.

    Broadcasting prepends dimensions and stretches size-1 ones; the gradient of a stretched
    input is the sum over the copies it was stretched into.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    if lead > 0 and grad.shape[lead:] == shape:   # only prepended axes (a bias): one sum
        return grad.sum(axis=tuple(range(lead)))
    if lead < 0 or any(n != 1 and n != g for n, g in zip(shape, grad.shape[lead:])):
        raise ValueError(f"a gradient of shape {grad.shape} cannot be reduced to the input "
                         f"shape {shape}")
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if lead or grad.shape != shape:
        grad = grad.reshape(shape)
    return grad


# ----------------------------------------------------------------------------- hooks
# Two hook points, for data-parallel training (tl.nn.parallel.DistributedDataParallel) to
# start reducing a gradient while backward is still running (PyTorch's
# register_post_accumulate_grad_hook and queue_callback). Kept apart from Tensor: a leaf's
# hooks live here, keyed by id, and cost a backward pass nothing while none are registered.
_leaf_hooks: dict = {}          # id(leaf) -> (weakref to leaf, {handle id: hook})


_grad_hooks: dict = {}          # id(tensor) -> (weakref, {handle id: hook}): register_hook


class _LeafHookHandle:
    _next_id = 0

    def __init__(self, tensor, hook: Callable, table: dict = _leaf_hooks):
        key = id(tensor)
        entry = table.get(key)
        if entry is None or entry[0]() is not tensor:   # none yet, or a dead tensor's id
            entry = (weakref.ref(tensor, lambda _, k=key, d=table: d.pop(k, None)), {})
            table[key] = entry
        self.key, self.id, self.table = key, _LeafHookHandle._next_id, table
        _LeafHookHandle._next_id += 1
        entry[1][self.id] = hook

    def remove(self) -> None:
        entry = self.table.get(self.key)
        if entry is not None:
            entry[1].pop(self.id, None)
            if not entry[1]:
                del self.table[self.key]


def register_post_accumulate_grad_hook(tensor, hook: Callable) -> _LeafHookHandle:
    """Call `hook(tensor)` during backward() once `tensor.grad` holds this pass's whole
    gradient (every contribution summed in). `tensor` must be a leaf that requires grad.
    Returns a handle whose `remove()` unregisters the hook. Not called by `tl.grad`, which
    does not accumulate into .grad."""
    if not isinstance(tensor, Tensor) or not tensor.requires_grad or tensor._ctx is not None:
        raise RuntimeError("register_post_accumulate_grad_hook: expected a leaf Tensor that "
                           "requires grad")
    return _LeafHookHandle(tensor, hook)


def register_hook(tensor, hook: Callable) -> _LeafHookHandle:
    """PyTorch's Tensor.register_hook: call `hook(grad)` with the whole gradient of
    `tensor` (every contribution summed) each time a backward pass or tl.grad computes it;
    a returned Tensor replaces the gradient from there on (what reaches .grad, tl.grad's
    result and, for a non-leaf, the rest of the graph). Hooks run in registration order.
    Returns a handle whose `remove()` unregisters the hook."""
    if not isinstance(tensor, Tensor) or not tensor.requires_grad:
        raise RuntimeError("register_hook: cannot register a hook on a tensor that does not "
                           "require grad")
    return _LeafHookHandle(tensor, hook, _grad_hooks)


def _apply_grad_hooks(t, g):
    entry = _grad_hooks.get(id(t))
    if entry is None or entry[0]() is not t:
        return g
    for hook in list(entry[1].values()):
        r = hook(g)
        if r is not None:
            if not isinstance(r, Tensor) or tuple(r.shape) != tuple(g.shape):
                raise RuntimeError(
                    f"register_hook: a hook on a tensor of shape {tuple(t.shape)} returned "
                    f"{type(r).__name__} {tuple(getattr(r, 'shape', ()))}; return None or a "
                    f"Tensor of shape {tuple(g.shape)}")
            g = r
    return g


class _Pass(threading.local):
    callbacks = None             # the running backward pass's queued callbacks, else None


_pass = _Pass()


def queue_callback(callback: Callable) -> None:
    """Run `callback()` once, when the backward pass now running has finished (after every
    leaf's .grad is final). Only callable from inside a backward pass (a hook)."""
    if _pass.callbacks is None:
        raise RuntimeError("queue_callback: no backward pass is running (call it from a "
                           "hook, e.g. a post-accumulate-grad hook)")
    _pass.callbacks.append(callback)


def _last_consumers(order, roots, table=_leaf_hooks) -> dict:
    """For each hooked leaf (a key of `table`) reached by this pass, the node after which its
    .grad is final: the last one (in backward order) that has it as an input; None for a
    root leaf."""
    last = {}
    for r in roots:
        if r._ctx is None and id(r) in table:
            last[id(r)] = (None, r)
    # backward visits reversed(order): the last node visited is the earliest in `order`
    for node in reversed(order):
        for t in node.inputs or ():
            if t is not None and t._ctx is None and id(t) in table:
                last[id(t)] = (node, t)
    return last


@contextlib.contextmanager
def _collect_callbacks():
    """The list queue_callback appends to while this (possibly nested) pass runs."""
    outer, _pass.callbacks = _pass.callbacks, []
    try:
        yield _pass.callbacks
    finally:
        _pass.callbacks = outer


def _fire_leaf_hooks(t) -> None:
    entry = _leaf_hooks.get(id(t))
    if entry is not None and t.grad is not None:
        for hook in list(entry[1].values()):
            hook(t)


# ----------------------------------------------------------------------------- backward pass
def _topological_order(roots) -> list:
    """Nodes reachable from `roots`, inputs before outputs, by iterative DFS."""
    order, visited = [], set()
    stack = [(r._ctx, False) for r in roots if r._ctx is not None]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        if node.inputs is not None:
            # Inputs pushed last-first, so the first input (the data path, by convention:
            # x @ w, x * w, x + b) is explored first and lands earlier in `order`: backward,
            # which visits reversed(order), then finishes a parameter's gradient right after
            # its layer rather than at the very end (data-parallel hooks start sooner).
            for t in reversed(node.inputs):
                if t is not None:
                    child = t._ctx
                    if child is not None and child not in visited:
                        stack.append((child, False))
    return order


def _run_backward(roots, root_grads, targets, retain_graph, create_graph, accumulate):
    """Backpropagate; accumulate into leaves' .grad or return grads of `targets`."""
    order = _topological_order(roots)
    grads: dict = {}                       # node -> gradient of its output so far
    wanted = None                          # id(target) -> its positions in `targets`
    if targets is not None:
        wanted = {}
        for i, t in enumerate(targets):
            wanted.setdefault(id(t), []).append(i)
    results = [None] * len(targets) if targets is not None else None
    check = _anomaly_backward_check
    hooked = {}                            # node (or None: the roots) -> leaves to call
    if accumulate and _leaf_hooks:
        for node, t in _last_consumers(order, roots).values():
            hooked.setdefault(node, []).append(t)
    # Arrays some leaf .grad (or the caller, for root grads) holds: never stored twice.
    owned: set = {id(g.array) for g in root_grads}
    # Arrays a leaf .grad took without copying: another node may still read them, so the
    # leaf accumulates into them out of place until this pass ends.
    shared: set = set()
    # A node may save its output (Exp saves y) by weak reference; once a consumer node is
    # released the output can lose its last strong reference before its own backward runs,
    # so hold each tensor that received a gradient until its node is processed.
    alive: dict = {}
    # register_hook: a hooked leaf's gradient is summed in `pending` and handed to its hooks
    # once complete (after its last consumer); a hooked non-leaf's when its node is reached.
    hook_leaves: dict = {}                 # node (or None: the roots) -> hooked leaves
    out_hooked: dict = {}                  # node -> {id: hooked output tensor}
    pending: dict = {}                     # id(leaf) -> [leaf, summed gradient]
    if _grad_hooks:
        for node, t in _last_consumers(order, roots, _grad_hooks).values():
            hook_leaves.setdefault(node, []).append(t)

    def flush_leaves(node):
        for t in hook_leaves.get(node, ()):
            item = pending.pop(id(t), None)
            if item is not None:
                give(t, _apply_grad_hooks(t, item[1]))

    def give(t, g):    # a hooked tensor's final gradient: to tl.grad's results, to .grad
        if wanted is not None:
            for i in wanted.get(id(t), ()):
                results[i] = g if results[i] is None else results[i] + g
        if t._ctx is None and accumulate:
            _accumulate_leaf(t, g, create_graph, owned, shared)

    def deliver(t, g):
        if _grad_hooks and id(t) in _grad_hooks:
            if t._ctx is None:
                item = pending.get(id(t))
                if item is None:
                    pending[id(t)] = [t, g]
                else:
                    item[1] = item[1] + g
                return
            out_hooked.setdefault(t._ctx, {})[id(t)] = t
        elif wanted is not None:
            for i in wanted.get(id(t), ()):
                results[i] = g if results[i] is None else results[i] + g
        node = t._ctx
        if node is not None:
            if node.n_outputs == 1:
                prev = grads.get(node)
                grads[node] = g if prev is None else prev + g
            else:  # one slot per output; outputs no gradient reaches stay None
                slots = grads.get(node)
                if slots is None:
                    slots = grads[node] = [None] * node.n_outputs
                i = node.output_index[id(t)]
                slots[i] = g if slots[i] is None else slots[i] + g
            if node._out_ref is not None:
                alive.setdefault(node, []).append(t)
        elif accumulate:
            _accumulate_leaf(t, g, create_graph, owned, shared)

    plain = not _grad_hooks and wanted is None     # deliver()'s common case applies
    with _collect_callbacks() as callbacks, set_grad_enabled(create_graph):
        for r, g in zip(roots, root_grads):
            if r._ctx is None and (wanted is None or id(r) not in wanted) and \
                    id(r) not in _grad_hooks:
                if accumulate and r.requires_grad:
                    _accumulate_leaf(r, g, create_graph, owned, shared)
                continue
            deliver(r, g)
        if hook_leaves:
            flush_leaves(None)
        for t in hooked.get(None, ()):
            _fire_leaf_hooks(t)
        for node in reversed(order):
            g = grads.pop(node, None)
            if g is None:
                if hook_leaves:
                    flush_leaves(node)
                for t in hooked.get(node, ()) if hooked else ():
                    _fire_leaf_hooks(t)
                continue
            if out_hooked and node in out_hooked:
                for t in out_hooked.pop(node).values():
                    if node.n_outputs == 1:
                        g = _apply_grad_hooks(t, g)
                        give(t, g)
                    elif g[node.output_index[id(t)]] is not None:
                        i = node.output_index[id(t)]
                        g[i] = _apply_grad_hooks(t, g[i])
                        give(t, g[i])
            if node.freed:
                raise RuntimeError(
                    f"{node.fn.__name__}.backward: trying to backward through the graph a "
                    "second time after its saved values were freed; pass retain_graph=True "
                    "to the first backward()")
            gin = node.fn.backward(node, g) if node.n_outputs == 1 else \
                node.fn.backward(node, *g)
            if type(gin) is not tuple:
                gin = (gin,)
            if len(gin) != len(node.inputs):
                raise RuntimeError(
                    f"{node.fn.__name__}.backward returned {len(gin)} gradient(s) for "
                    f"{len(node.inputs)} positional input(s): return one per positional "
                    "argument of apply (None where there is none), and pass static "
                    "arguments as keywords")
            if check is not None:
                check(node, gin, g)
            # an input that did not require grad when the op ran is no part of the graph,
            # even if its flag was set since (PyTorch: a layer frozen for one loss, as a
            # GAN's discriminator under the generator's loss, gets no gradient from it)
            needs = node.needs_input_grad
            if len(needs) != len(node.inputs):
                needs = (True,) * len(node.inputs)
            for t, gi, needed in zip(node.inputs, gin, needs):
                if gi is None or t is None or not needed or not t.requires_grad:
                    continue
                if not isinstance(gi, Tensor):
                    gi = Tensor._make(node.xp.asarray(gi))
                gd, td = gi.array, t.array
                if gd.shape != td.shape:
                    try:
                        gi = unbroadcast(gi, td.shape)
                    except ValueError as e:
                        raise RuntimeError(f"{node.fn.__name__}.backward: {e}") from None
                if gd.dtype is not td.dtype and gd.dtype != td.dtype:
                    gi = gi.to(td.dtype)
                if plain and t._ctx is not None and t._ctx.n_outputs == 1:
                    # deliver()'s common case inline (no hooks, no targets, one output)
                    child = t._ctx
                    prev = grads.get(child)
                    grads[child] = gi if prev is None else prev + gi
                    if child._out_ref is not None:
                        alive.setdefault(child, []).append(t)
                else:
                    deliver(t, gi)
            if not retain_graph:
                node.release()
            if node._out_ref is not None:
                alive.pop(node, None)
            if hook_leaves:
                flush_leaves(node)
            if hooked:
                for t in hooked.get(node, ()):
                    _fire_leaf_hooks(t)
    for callback in callbacks:
        callback()
    return results


def _accumulate_leaf(t, g, create_graph, owned, shared) -> None:
    """Add `g` into leaf `t.grad`. A leaf's .grad never shares memory with another leaf's
    .grad or with a caller's tensor, so in-place updates of one grad (clip_grad_norm_,
    zero_) can never reach another; and it is never changed in place while another node
    may still read the same array."""
    if create_graph:   # .grad joins the graph: differentiable ops only, never in place
        if t.grad is not None:
            t.grad = t.grad + g
            return
        if id(g.array) in owned:          # another leaf (or the caller) holds this array
            g = g.clone()
        owned.add(id(g.array))
        t.grad = g
        return
    if t.grad is None:
        d = g.array
        if d.base is not None or id(d) in owned or not d.flags.writeable:
            d = d.copy()
        else:
            shared.add(id(d))
        owned.add(id(d))
        t.grad = Tensor._make(d)
    elif id(t.grad.array) in shared or t.grad.requires_grad:
        # out of place: another node may still read this array, or a graph saved this
        # .grad (made by an earlier create_graph=True backward)
        d = t.grad.array + g.array
        owned.add(id(d))
        t.grad = Tensor._make(d)
    else:
        t.grad.array += g.array


def _as_grad_list(outputs, grad_outputs):
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    gs = []
    for o, g in zip(outputs, grad_outputs):
        if not isinstance(o, Tensor):
            raise TypeError(f"backward: expected Tensor outputs, got {type(o).__name__}")
        if not o.requires_grad:
            raise RuntimeError(f"backward: output of shape {o.shape} does not require grad "
                               "(it was made under no_grad or from tensors that don't)")
        if g is None:
            d = o.array
            if d.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for scalar outputs, got "
                    f"shape {o.shape}; pass gradient= (a tensor of that shape)")
            g = Tensor._make(o.xp.ones(d.shape, dtype=d.dtype))
        elif not isinstance(g, Tensor):
            g = Tensor._make(o.xp.asarray(g, dtype=o.dtype))
        if g.shape != o.shape:
            raise RuntimeError(f"backward: gradient has shape {g.shape} but output has shape "
                               f"{o.shape}")
        gs.append(g)
    return outputs, gs


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None,
             create_graph: bool = False) -> None:
    """Accumulate d(tensors)/d(leaf) into every leaf's `.grad` (see Tensor.backward)."""
    outputs, gs = _as_grad_list(tensors, grad_tensors)
    if retain_graph is None:
        retain_graph = create_graph
    _run_backward(outputs, gs, None, retain_graph, create_graph, accumulate=True)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """Return d(outputs)/d(inputs) without touching any `.grad`.

    With `create_graph=True` the result is itself differentiable (second derivatives,
    Hessian-vector products, gradient penalties).
    """
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad")
    outputs, gs = _as_grad_list(outputs, grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    res = _run_backward(outputs, gs, inputs, retain_graph, create_graph, accumulate=False)
    # Results never share an array with each other or with the caller's grad_outputs (Add
    # hands one gradient to both inputs): an in-place change of one must not reach another.
    taken = {id(g.array) for g in gs}
    for i, r in enumerate(res):
        if r is None:
            if not allow_unused:
                raise RuntimeError(f"grad: input {i} (shape {inputs[i].shape}) was not used "
                                   "to compute the outputs; pass allow_unused=True to get None")
            continue
        if id(r.array) in taken:
            res[i] = r = r.clone()
        taken.add(id(r.array))
    return tuple(res)


def hvp(f: Callable, inputs, v) -> tuple:
    """Hessian-vector product of scalar `f(*inputs)`: returns (f(inputs), H @ v), detached.
    See tl.autograd.functional.hvp (double backward, Pearlmutter 1994)."""
    return functional.hvp(f, inputs, v)


def jacobian(f: Callable, inputs, create_graph: bool = False):
    """Full Jacobian of `f` (for small functions): shape out.shape + in.shape per input.
    See tl.autograd.functional.jacobian."""
    return functional.jacobian(f, inputs, create_graph=create_graph)


# The engine wraps arrays in Tensors, and tensor.py imports this module: importing Tensor
# last, once everything above is defined, closes the cycle without a per-call import.
from .tensor import Tensor  # noqa: E402
from .anomaly import (AnomalyError, detect_anomaly, is_anomaly_enabled,  # noqa: E402
                      set_detect_anomaly)

# tl.autograd.functional (torch.autograd.functional): jacobian, hessian, vjp, jvp, hvp, vhp
# `import tinylatent.autograd.functional` works too, although autograd is a module, not a
# package: the import system looks the dotted name up in sys.modules first.
from . import autograd_functional as functional  # noqa: E402
sys.modules[__name__ + ".functional"] = functional
