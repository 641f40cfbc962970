#!/usr/bin/env python
"""Build docs/pytorch_api_list.txt: the PyTorch APIs that real programs use, and how often,
read from their source (issue 13's "share of a broad PyTorch API list").

    python scripts/pytorch_api_usage.py SRC_DIR... > docs/pytorch_api_list.txt
    python scripts/pytorch_api_usage.py --coverage docs/pytorch_api_list.txt

How the list is chosen: every .py file under the given directories (the list in
docs/pytorch_api_list.txt was made from pytorch/examples without its distributed/, fx/,
cpp/ and docs/ folders, which exercise multi-process, compiler and C++ features rather than
a model's code; and from facebookresearch/moco, facebookresearch/dino, sthalles/SimCLR,
lucidrains/byol-pytorch and AntixK/PyTorch-VAE: self-supervised and unsupervised programs)
is parsed with `ast`, and three kinds of use are counted:

  torch.<path>      every attribute chain rooted at a name bound to torch by an import
                    (`import torch.nn as nn`, `from torch.utils.data import DataLoader`),
                    cut at the longest prefix that exists in the installed torch
  Tensor.<name>     an attribute (method or property) of torch.Tensor read on any object,
                    unless list, dict, str, set, tuple, int, float or bytes have it too
                    (`.split`, `.index`, `.count` are left out: they are mostly strings)
  Module.<name>     the same for torch.nn.Module attributes that Tensor does not have
  Optimizer.<name>  the same for torch.optim.Optimizer attributes Tensor and Module lack

This is a usage census, not a type inference: a `.mean()` on a NumPy array counts as
Tensor.mean. Presence (--coverage) means tinylatent has the attribute at the same place
(torch -> tinylatent; Tensor, Module, Optimizer instances), not that it behaves the same;
behaviour is what the tests check.
"""
from __future__ import annotations

import argparse
import ast
import collections
import importlib
import sys
from pathlib import Path

SKIP_DIRS = {"distributed", "fx", "cpp", "docs"}


def _aliases(tree: ast.AST) -> dict:
    """Names bound to torch objects by the file's imports -> their dotted torch path."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "torch" or a.name.startswith("torch."):
                    if a.asname:
                        names[a.asname] = a.name
                    else:
                        names["torch"] = "torch"
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                (node.module == "torch" or node.module.startswith("torch.")):
            for a in node.names:
                if a.name != "*":
                    names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _chain(node: ast.AST):
    """(root name, [attr, attr, ...]) of a Name.attr.attr expression, else None."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return node.id, attrs[::-1]
    return None


def _resolve(path: str, torch) -> str | None:
    """The longest prefix of `path` that exists in torch (None if not even the root)."""
    parts = path.split(".")
    obj, good = torch, ["torch"]
    for p in parts[1:]:
        try:
            obj = getattr(obj, p)
        except AttributeError:
            try:
                obj = importlib.import_module(".".join(good + [p]))
            except ImportError:
                break
        good.append(p)
    return ".".join(good)


def census(paths: list[Path]) -> collections.Counter:
    import torch
    skip = set()
    for kind in (list, dict, str, set, tuple, int, float, bytes):
        skip |= set(dir(kind))
    tensor = {n for n in dir(torch.Tensor) if not n.startswith("_")} - skip
    module = {n for n in dir(torch.nn.Module) if not n.startswith("_")} - tensor - skip
    module.add("training")
    optimizer = ({n for n in dir(torch.optim.Optimizer) if not n.startswith("_")} |
                 {"param_groups", "state"}) - tensor - module - skip
    counts = collections.Counter()
    files = [f for p in paths for f in sorted(Path(p).rglob("*.py"))
             if not SKIP_DIRS & set(f.relative_to(p).parts[:-1])]
    for f in files:
        try:
            tree = ast.parse(f.read_text(errors="replace"))
        except SyntaxError:
            continue
        names = _aliases(tree)
        inner = set()          # Attribute and Name nodes that are part of a longer chain
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                inner.add(id(node.value))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and id(node) not in inner:
                got = _chain(node)
                if got and got[0] in names:
                    counts[_resolve(".".join([names[got[0]]] + got[1]), torch)] += 1
                    continue
            if isinstance(node, ast.Attribute):
                if node.attr in tensor:
                    counts[f"Tensor.{node.attr}"] += 1
                elif node.attr in module:
                    counts[f"Module.{node.attr}"] += 1
                elif node.attr in optimizer:
                    counts[f"Optimizer.{node.attr}"] += 1
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and \
                    node.id in names and id(node) not in inner:
                counts[_resolve(names[node.id], torch)] += 1
    counts.pop("torch", None)
    return counts


# ----------------------------------------------------------------------------- coverage
def present(api: str) -> bool:
    """Whether tinylatent has `api` (a line of the list) at PyTorch's place."""
    import tinylatent as tl
    kind, _, name = api.partition(".")
    if kind == "Tensor":
        return hasattr(tl.zeros(2, 2), name)
    if kind == "Module":
        return hasattr(tl.nn.Linear(1, 1), name)
    if kind == "Optimizer":
        return hasattr(tl.optim.SGD([tl.zeros(1, requires_grad=True)], lr=0.1), name)
    parts = api.split(".")
    obj, done = tl, ["tinylatent"]
    for p in parts[1:]:
        try:
            obj = getattr(obj, p)
        except AttributeError:
            try:
                obj = importlib.import_module(".".join(done + [p]))
            except ImportError:
                return False
        done.append(p)
    return True


def read_list(path) -> list[tuple[str, int]]:
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            api, n = line.split()
            out.append((api, int(n)))
    return out


def coverage(path) -> tuple[float, float, list[str]]:
    """(share of distinct APIs present, share of uses, the missing APIs by frequency)."""
    items = read_list(path)
    have = {api: present(api) for api, _ in items}
    distinct = sum(have.values()) / len(items)
    uses = sum(n for api, n in items if have[api]) / sum(n for _, n in items)
    return distinct, uses, [api for api, _ in items if not have[api]]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--coverage", type=Path, help="a list written by this script")
    args = parser.parse_args(argv)
    if args.coverage:
        distinct, uses, missing = coverage(args.coverage)
        n = len(read_list(args.coverage))
        print(f"{n} APIs: {distinct:.1%} present ({round(distinct * n)}), {uses:.1%} of uses")
        print("missing, most used first:", ", ".join(missing))
        return
    counts = census(args.paths)
    print("# PyTorch APIs used by real programs, with their number of uses; made by")
    print("# scripts/pytorch_api_usage.py (see its docstring for how) from:")
    for p in args.paths:
        print(f"#   {p.name}")
    for api, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{api} {n}")


if __name__ == "__main__":
    sys.exit(main())
