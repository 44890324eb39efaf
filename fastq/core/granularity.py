"""Granularities of linear quantization, and the canonical blocked view they map onto.

Every granularity is a block size per dimension (torchao's ``block_size``): per-tensor
is the whole shape, ``PerChannel(a)`` is 1 on axis ``a`` and full elsewhere,
``PerGroup(g, a)`` is ``g`` on ``a`` and 1 elsewhere, ``PerBlock`` is given.  Adjacent
dimensions merge when the inner one is covered whole by a block (the merged block is
``b_outer * d_inner``) or when both have block 1; what remains is padded to a 3-D view
``(P, K, Q)`` with blocks ``(bp, bk, bq)``, a reshape of the C-contiguous input (no copy).
The scale grid, ``ceil(d / b)`` per dimension, reshapes the same way (ONNX blocked
semantics: a partial last block, never padding).
"""
import math
import operator


class Granularity:
    # A granularity is part of the key of every cached plan, hashed on each call: its
    # hash is kept (in a slot, outside ``vars``) and dropped when an attribute changes.
    __slots__ = ("_hash",)

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    # (No exception on the way: a granularity made inline in each call, as
    # ``granularity=fq.PerChannel(0)``, is hashed once per call, and raising and catching
    # AttributeError there took 3 of the 4 us of making and hashing it.)
    def __hash__(self):
        value = getattr(self, "_hash", None)
        if value is None:
            value = hash((type(self), tuple(sorted(vars(self).items()))))
            object.__setattr__(self, "_hash", value)
        return value

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_hash", None)

    def __getstate__(self):
        # (string hashes differ between processes: the kept hash is never pickled)
        return dict(vars(self))

    def __setstate__(self, state):
        vars(self).update(state)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"fq.{type(self).__name__}({args})"


class PerTensor(Granularity):
    """One scale and zero point for the whole tensor."""

    def blocks(self, shape):
        return tuple(shape)

    def param_shape(self, shape):
        return ()


class PerChannel(Granularity):
    """One scale per index along ``axis`` (reduced over every other axis)."""

    def __init__(self, axis=0):
        self.axis = _check_int(axis, "axis")

    def blocks(self, shape):
        axis = normalize_axis(self.axis, len(shape))
        return tuple(1 if i == axis else d for i, d in enumerate(shape))

    def param_shape(self, shape):
        return (shape[normalize_axis(self.axis, len(shape))],)


class PerGroup(Granularity):
    """Groups of ``size`` consecutive elements along ``axis`` (default the last)."""

    def __init__(self, size, axis=-1):
        self.size = _check_int(size, "size")
        if self.size < 1:
            raise ValueError(f"group size must be >= 1, got {self.size}")
        self.axis = _check_int(axis, "axis")

    def blocks(self, shape):
        axis = normalize_axis(self.axis, len(shape))
        return tuple(self.size if i == axis else 1 for i in range(len(shape)))

    def param_shape(self, shape):
        return tuple(math.ceil(d / b) for d, b in zip(shape, self.blocks(shape)))


class PerBlock(Granularity):
    """Blocks of ``shape`` (one size per dimension); covers every other granularity."""

    def __init__(self, shape):
        try:
            self.shape = tuple(_check_int(b, "block shape") for b in shape)
        except TypeError:
            raise TypeError(f"block shape must be a sequence of ints, got {shape!r}") from None
        if any(b < 1 for b in self.shape):
            raise ValueError(f"block sizes must be >= 1, got {self.shape}")

    def blocks(self, shape):
        if len(self.shape) != len(shape):
            raise ValueError(f"granularity block shape {self.shape} has {len(self.shape)} "
                             f"dimensions, x has {len(shape)}")
        return tuple(min(b, d) if d else b for b, d in zip(self.shape, shape))

    def param_shape(self, shape):
        return tuple(math.ceil(d / b) for d, b in zip(shape, self.blocks(shape)))


def as_granularity(granularity):
    """Accept ``"tensor"``, ``None`` or a Granularity instance (ValueError otherwise: the
    argument is of the right kind, a granularity, but not one fastq has)."""
    if granularity is None or granularity == "tensor":
        return PerTensor()
    if isinstance(granularity, Granularity):
        return granularity
    raise ValueError("granularity must be 'tensor', fq.PerTensor(), fq.PerChannel(axis), "
                    f"fq.PerGroup(size, axis) or fq.PerBlock(shape), got {granularity!r}")


def normalize_axis(axis, ndim):
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for an array of {ndim} dimensions")
    return axis % ndim


def canonical_view(shape, blocks):
    """``((P, K, Q), (bp, bk, bq))`` for a C-contiguous array, or None past 3 dims."""
    dims = [(d, max(min(b, d), 1)) for d, b in zip(shape, blocks) if d != 1]
    merged = []
    for d, b in dims:
        if merged:
            d0, b0 = merged[-1]
            if b == d:
                merged[-1] = (d0 * d, b0 * d)
                continue
            if b0 == 1 and b == 1:
                merged[-1] = (d0 * d, 1)
                continue
        merged.append((d, b))
    if len(merged) < 3 and merged and 1 < merged[-1][1] < merged[-1][0] \
            and merged[-1][0] % merged[-1][1] == 0:
        d, b = merged.pop()  # whole blocks along the last dim become rows: (d / b, b)
        merged += [(d // b, 1), (b, b)]
    if len(merged) > 3:
        return None
    merged = [(1, 1)] * (3 - len(merged)) + merged
    return tuple(d for d, _ in merged), tuple(b for _, b in merged)


def _check_int(value, name):
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
