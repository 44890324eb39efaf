"""Sub-byte code packing kernels (CPU): 4-bit nibbles and 2-bit crumbs in bytes.

Layout (ONNX int4/uint4, torch ``quint4x2``, TFLite): the codes, in C order, fill each
byte from the low bits up, ``byte j = sum_k (code[j*per + k] & mask) << (k*bits)`` with
``per = 8 // bits``; a last byte that is not full is padded with zero bits.  Signed codes
are two's complement in their field, and unpacking sign-extends a field ``f`` as
``(f ^ h) - h`` with ``h = 2**(bits-1)`` (``h = 0`` for unsigned codes).

The serial kernels take 1-D contiguous int8 or uint8 arrays (each code is reinterpreted
as its low 8 bits) and run in uint8 lanes through the ``word`` intrinsics, so the full
bytes vectorize; the ``*_parallel`` wrappers split the full bytes into chunks for
``prange``.  ``pack_into`` / ``unpack_into`` pick serial or parallel from the size.
These are also what the quantize kernels and ``QTensor.codes()`` build on.
"""
import numpy as np
from numba import njit, prange

from ...runtime.threads import parallel_region
from .parallel import SERIAL_BELOW, chunk_bounds, n_chunks
from .word import band, bor, bxor, shl, shr, sub

U8 = np.uint8


@njit(cache=True, nogil=True, inline="always")
def _pack_full(codes, bits, out):
    """Fill every byte of ``out`` from ``out.size * (8 // bits)`` codes (bits 4 or 2)."""
    mask = U8((1 << bits) - 1)
    if bits == 4:
        for j in range(out.size):
            lo = band(U8(codes[2 * j]), mask)
            hi = shl(U8(codes[2 * j + 1]), U8(4))
            out[j] = bor(lo, hi)
    else:
        for j in range(out.size):
            b = band(U8(codes[4 * j]), mask)
            b = bor(b, shl(band(U8(codes[4 * j + 1]), mask), U8(2)))
            b = bor(b, shl(band(U8(codes[4 * j + 2]), mask), U8(4)))
            out[j] = bor(b, shl(U8(codes[4 * j + 3]), U8(6)))


@njit(cache=True, nogil=True, inline="always")
def pack_codes(codes, bits, out):
    """Pack the 1-D ``codes`` (int8/uint8, in range) into ``out`` (uint8, ceil(n*bits/8)).

    ``bits`` is 4 or 2; the first code goes to the low bits, a partial last byte is
    padded with zero bits.  No range check: out-of-range codes are masked to ``bits``.
    """
    per, lg = (2, 1) if bits == 4 else (4, 2)  # (shifts, not divisions: called per block)
    full = codes.size >> lg
    _pack_full(codes[:full * per], bits, out[:full])
    rest = codes.size - full * per
    if rest > 0:
        mask = U8((1 << bits) - 1)
        b = U8(0)
        for k in range(rest):
            b = bor(b, shl(band(U8(codes[full * per + k]), mask), U8(k * bits)))
        out[full] = b


@njit(cache=True, nogil=True, inline="always")
def pack_at(codes, start, bits, out):
    """Pack ``codes``, the codes of flat indices ``start, start + 1, ...``, into ``out``.

    A first byte shared with the codes before ``start`` (``start`` not on a byte
    boundary) gets its fields ORed in: those codes must be packed already.  The rest is
    written whole by :func:`pack_codes`, a partial last byte padded with zero bits (the
    codes after it are ORed in later).  Lets a kernel pack codes block by block.
    """
    per, lg = (2, 1) if bits == 4 else (4, 2)
    mask = U8((1 << bits) - 1)
    head = min((per - (start & (per - 1))) & (per - 1), codes.size)
    for k in range(head):
        i = start + k
        field = shl(band(U8(codes[k]), mask), U8((i & (per - 1)) * bits))
        out[i >> lg] = bor(out[i >> lg], field)
    pack_codes(codes[head:], bits, out[(start + head) >> lg:])


@njit(cache=True, nogil=True)
def _unpack_full(packed, bits, half, out):
    """Expand every byte of ``packed`` into ``8 // bits`` codes of ``out`` (uint8 view)."""
    mask = U8((1 << bits) - 1)
    if bits == 4:
        for j in range(packed.size):
            b = packed[j]
            out[2 * j] = sub(bxor(band(b, mask), half), half)
            out[2 * j + 1] = sub(bxor(shr(b, U8(4)), half), half)
    else:
        for j in range(packed.size):
            b = packed[j]
            out[4 * j] = sub(bxor(band(b, mask), half), half)
            out[4 * j + 1] = sub(bxor(band(shr(b, U8(2)), mask), half), half)
            out[4 * j + 2] = sub(bxor(band(shr(b, U8(4)), mask), half), half)
            out[4 * j + 3] = sub(bxor(shr(b, U8(6)), half), half)


@njit(cache=True, nogil=True)
def unpack_codes(packed, bits, signed, out):
    """Unpack ``out.size`` codes from the 1-D uint8 ``packed`` into ``out`` (uint8 view).

    ``bits`` is 4 or 2; ``signed`` sign-extends each field (two's complement), so an int8
    result is read through ``out.view(np.uint8)``.  ``packed`` must hold at least
    ``ceil(out.size * bits / 8)`` bytes; bytes past those are not read.
    """
    per = 8 // bits
    half = U8(1 << (bits - 1)) if signed else U8(0)
    full = out.size // per
    _unpack_full(packed[:full], bits, half, out[:full * per])
    rest = out.size - full * per
    if rest > 0:
        mask = U8((1 << bits) - 1)
        b = packed[full]
        for k in range(rest):
            out[full * per + k] = sub(bxor(band(shr(b, U8(k * bits)), mask), half), half)


@njit(parallel=True, cache=True, nogil=True)
def _pack_parallel(codes, bits, out, nchunks):
    per = 8 // bits
    for c in prange(nchunks):
        start, stop = chunk_bounds(out.size, c, nchunks)
        _pack_full(codes[start * per:stop * per], bits, out[start:stop])


@njit(parallel=True, cache=True, nogil=True)
def _unpack_parallel(packed, bits, half, out, nchunks):
    per = 8 // bits
    for c in prange(nchunks):
        start, stop = chunk_bounds(packed.size, c, nchunks)
        _unpack_full(packed[start:stop], bits, half, out[start * per:stop * per])


def pack_into(codes, bits, out):
    """``pack_codes``, in parallel for big inputs (Python-level dispatch)."""
    per = 8 // bits
    full = codes.size // per
    if codes.size < SERIAL_BELOW:
        pack_codes(codes, bits, out)
        return
    with parallel_region():
        _pack_parallel(codes[:full * per], bits, out[:full], n_chunks(codes.size))
    pack_codes(codes[full * per:], bits, out[full:])


def unpack_into(packed, bits, signed, out):
    """``unpack_codes``, in parallel for big outputs (Python-level dispatch)."""
    per = 8 // bits
    full = out.size // per
    if out.size < SERIAL_BELOW:
        unpack_codes(packed, bits, signed, out)
        return
    half = np.uint8(1 << (bits - 1)) if signed else np.uint8(0)
    with parallel_region():
        _unpack_parallel(packed[:full], bits, half, out[:full * per], n_chunks(out.size))
    unpack_codes(packed[full:], bits, signed, out[full * per:])
