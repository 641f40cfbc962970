"""PyTorch's nn.utils.rnn helpers that work on plain tensors (pad_sequence). Packed
sequences are not provided: tinylatent's RNNs take padded batches and masks."""
from __future__ import annotations

from ... import ops
from ...tensor import Tensor

__all__ = ["pad_sequence"]


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack tensors of shapes (L_i, *) into (L_max, B, *) (or (B, L_max, *) with
    batch_first), each padded with padding_value on the right (or left); differentiable."""
    sequences = list(sequences)
    if not sequences:
        raise ValueError("pad_sequence: got no sequences")
    if padding_side not in ("right", "left"):
        raise ValueError(f"pad_sequence: padding_side must be 'right' or 'left', got "
                         f"{padding_side!r}")
    trailing = tuple(sequences[0].shape[1:])
    for i, s in enumerate(sequences):
        if tuple(s.shape[1:]) != trailing:
            raise ValueError(f"pad_sequence: sequence {i} has shape {tuple(s.shape)}, "
                             f"expected (L, {', '.join(map(str, trailing))})")
    longest = max(s.shape[0] for s in sequences)
    rest = [(0, 0)] * len(trailing)
    padded = [ops.pad(s, [(0, longest - s.shape[0]) if padding_side == "right" else
                          (longest - s.shape[0], 0)] + rest, value=padding_value)
              for s in sequences]
    return ops.stack(padded, axis=0 if batch_first else 1)     # (B, L, *) or (L, B, *)
