"""Integer codes: the dtypes of linear quantization, their ranges and storage.

One table: every code range and storage dtype in fastq comes from ``code_range``.
"""
from dataclasses import dataclass

import numpy as np

PACK_BITS = (8, 4, 2)  # field widths ``fq.pack`` takes (8: one code per byte)


def code_range(bits, signed):
    """``(qmin, qmax)`` of ``bits``-bit two's complement (signed) or unsigned codes."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


@dataclass(frozen=True)
class IntCodes:
    """An integer code dtype: its range, width and the NumPy dtype its codes unpack to
    (int8/uint8 for 4- and 2-bit codes, which are stored packed)."""
    name: str
    qmin: int
    qmax: int
    bits: int
    code_dtype: type

    @property
    def packed(self):
        return self.bits < 8


def _int_codes(bits, signed):
    qmin, qmax = code_range(bits, signed)
    storage = max(bits, 8)
    dtype = np.dtype(f"{'i' if signed else 'u'}{storage // 8}").type
    return IntCodes(f"{'' if signed else 'u'}int{bits}", qmin, qmax, bits, dtype)


INT_DTYPES = {c.name: c for c in (_int_codes(b, s) for b in (8, 16, 4, 2) for s in (True, False))}


def int_codes(dtype, name="dtype"):
    """The :class:`IntCodes` of the dtype name ``dtype``, or ValueError naming ``name``."""
    codes = INT_DTYPES.get(dtype) if isinstance(dtype, str) else None
    if codes is None:
        raise ValueError(f"{name} must be one of {tuple(INT_DTYPES)}, got {dtype!r}")
    return codes


def dtype_info(dtype, name="dtype"):
    """``(qmin, qmax, bits, code_dtype)`` of the dtype name ``dtype``."""
    c = int_codes(dtype, name)
    return c.qmin, c.qmax, c.bits, c.code_dtype


def check_pack_bits(bits):
    """``bits`` as an int of ``PACK_BITS``, or ValueError."""
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)) \
            or int(bits) not in PACK_BITS:
        raise ValueError(f"bits must be one of {PACK_BITS}, got {bits!r}")
    return int(bits)
