"""The quantize kernels over rows of the canonical view (CPU), for ``fastq.kernels.cpu.quant``:
``quantize_rows`` (a scale per row or per group along it), ``quantize_columns`` (a
scale per column), and their parallel wrappers over chunks of rows.
"""
import math

import numpy as np
from numba import njit, prange

from ....core.flags import NAN
from ..parallel import AHEAD, BLOCK
from ..word import (FP_NEAREST_EVEN, finish_stream, is_float, local_block, wide_vectors,
                    prefetch_span, stream_out, swap_fp_control, unmanaged)
from .codes import PIECE, code_piece, code_rows
from ..pack import pack_at
from .params import block_params, scale_zero
from .ranges import row_range

ROW = 1 << 14  # elements: a single long row (per tensor) is cut into rows this long


def code_scratch(nchunks, bits):
    """Codes on their way to be packed: a piece per chunk (``nchunks`` 0: one, 1-D);
    no elements for 8/16 bits.  uint8 for either sign (packing keeps the low bits)."""
    n = PIECE if bits < 8 else 0
    return np.empty((nchunks, n) if nchunks else n, np.uint8)


def byte_align(Q, bits):
    """Rows to a chunk start so that it falls on a byte of packed codes (rows of Q)."""
    return (8 // bits) // math.gcd(Q, 8 // bits) if bits < 8 else 1


def unsigned_codes(out):
    """Integer codes as the unsigned integers of their width (a view; float values as
    they are).  The kernels compute each code as an int32 in ``[qmin, qmax]`` and store
    its low bits, which are the same bits for int8 and uint8 (int16, uint16): one
    compiled kernel then serves both signs, where each code dtype compiled its own
    (the per-column kernel alone is ~20 s of compiling each)."""
    return out.view(f"u{out.dtype.itemsize}") if out.dtype.kind == "i" else out



@njit(cache=True, nogil=True, error_model="numpy")
def quantize_columns(x3, bp, bk, scale3, zero3, qmin, qmax, r0, r1, out3, bits, base,
                      scratch, packed, check, fused, symmetric, ignore, zero_free):
    """``quantize_rows`` where each column has its own parameters (blocks
    ``(bp, bk, 1)``: ``PerChannel`` on the last axis, ``PerGroup`` along the first):
    rows four at a time where they share their parameters (faster than one at a time:
    the parameters load once for four rows), or with ``zero_free`` (every zero point
    0) one at a time without zero points (``code_scaled``: faster still).  ``scratch``
    holds four pieces of codes for packing.

    ``fused`` (dynamic, block rows that fit in cache; ``r0`` on a block row): at the
    first row of each block row, its column ranges and parameters (``block_params``),
    then its codes, from cache.  Returns flags as ``quantize_rows``."""
    assert PIECE >= 4 * BLOCK
    x3, scale3, zero3 = unmanaged(x3), unmanaged(scale3), unmanaged(zero3)
    out3, scratch, packed = unmanaged(out3), unmanaged(scratch), unmanaged(packed)
    K, Q = x3.shape[1], x3.shape[2]
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (rint rounds as it says)
    whole_bytes = bits >= 8 or Q % (8 // bits) == 0
    fake = is_float(out3)  # (float values out: fake quantization; a compile-time constant)
    nan, flags, skip = False, 0, False
    r = r0
    while r < r1:
        p, k = r // K, r % K
        four = (not zero_free and r + 4 <= r1 and k + 4 <= K and k // bk == (k + 3) // bk
                and whole_bytes)  # (pack_at fills a byte shared by two rows in order)
        srow, zrow = scale3[p // bp, k // bk], zero3[p // bp, k // bk]
        if fused and k % bk == 0:
            block_flags = block_params(x3[p, k:min(k + bk, K)], srow, zrow, symmetric, ignore,
                                        qmin, qmax)
            flags |= block_flags
            check, skip = block_flags & NAN != 0, block_flags != 0 and not ignore
        if skip:  # (the caller raises)
            r += 1
            continue
        step = BLOCK if bits < 8 else Q  # (four pieces of BLOCK fill one of PIECE)
        for start in range(0, Q, step):
            stop = min(start + step, Q)
            ss, zs, n = srow[start:stop], zrow[start:stop], stop - start
            k4 = (k, min(k + 1, K - 1), min(k + 2, K - 1), min(k + 3, K - 1))
            xs4 = (x3[p, k4[0], start:stop], x3[p, k4[1], start:stop],
                   x3[p, k4[2], start:stop], x3[p, k4[3], start:stop])
            if not fake and bits < 8:  # codes in cache, then packed
                codes4 = (scratch[:n], scratch[BLOCK:BLOCK + n],
                          scratch[2 * BLOCK:2 * BLOCK + n], scratch[3 * BLOCK:3 * BLOCK + n])
                if check:  # (constant flags in each copy: no flag test in the loops)
                    nan |= code_rows(xs4, ss, zs, qmin, qmax, False, codes4, True, four,
                                     zero_free)
                else:
                    code_rows(xs4, ss, zs, qmin, qmax, False, codes4, False, four, zero_free)
                for i in range(4 if four else 1):
                    pack_at(codes4[i], base + (r + i) * Q + start, bits, packed)
            else:
                outs4 = (out3[p, k4[0], start:stop], out3[p, k4[1], start:stop],
                         out3[p, k4[2], start:stop], out3[p, k4[3], start:stop])
                if check:
                    nan |= code_rows(xs4, ss, zs, qmin, qmax, fake, outs4, True, four,
                                     zero_free)
                else:
                    code_rows(xs4, ss, zs, qmin, qmax, fake, outs4, False, four, zero_free)
        r += 4 if four else 1
    swap_fp_control(saved)
    return flags | (NAN if nan else 0)


@njit(cache=True, nogil=True, error_model="numpy")
def quantize_rows(x3, bp, bk, bq, scale3, zero3, qmin, qmax, r0, r1, out3, bits, base,
                   scratch, packed, stream, check, fused, symmetric, ignore):
    """Quantize rows ``r0..r1`` of the view; returns flags (``fastq.core.flags``): ``NAN`` a NaN met, ``INF`` an inf met.

    ``fused`` (dynamic, one parameter group per row): each row's range and parameters
    first, written to ``scale3``/``zero3``, then its codes, while it is in cache; a row
    with a NaN or inf is coded only with ``ignore`` (its range from the finite values).

    Rows go in pieces of at most ``PIECE`` elements within one parameter group (of
    ``bq > 1`` elements along the row); with ``fused``, the input prefetched ``AHEAD``
    elements ahead in the flat array (the next row, for its range pass).  Without, the
    hardware prefetchers see one long stream and the software prefetch only costs
    (docs/design.md, "Prefetch only where it helps").  8/16-bit codes (or fake values)
    go to ``out3``, by non-temporal stores with ``stream``; with ``bits`` 4 or 2 each
    piece's codes go through ``scratch`` (in cache) into the packed bytes ``packed``,
    where ``x3[0, 0, 0]`` has flat index ``base`` (``r0`` must then start on a byte
    boundary)."""
    x3, scale3, zero3 = unmanaged(x3), unmanaged(scale3), unmanaged(zero3)
    out3, scratch, packed = unmanaged(out3), unmanaged(scratch), unmanaged(packed)
    K, Q = x3.shape[1], x3.shape[2]
    flat = x3.reshape(x3.size)
    step = min(bq, PIECE)
    buf = local_block(out3, PIECE)
    fake = is_float(out3)  # (float values out: fake quantization; a compile-time constant)
    saved = swap_fp_control(np.uint32(FP_NEAREST_EVEN))  # (rint rounds as it says)
    wide_vectors()  # (512-bit lanes where the CPU has them: the FMAs of ``codes.quotient``)
    flags = 0
    p, k = r0 // K, r0 % K
    for r in range(r0, r1):
        if k == K:
            p, k = p + 1, 0
        row = x3[p, k]
        pb, kb = p if bp == 1 else p // bp, k if bk == 1 else k // bk  # (divisions are slow)
        srow, zrow = scale3[pb, kb], zero3[pb, kb]
        if fused:
            row_flags, lo, hi = row_range(row, ignore)
            flags |= row_flags
            srow[0], zrow[0] = scale_zero(lo, hi, symmetric, qmin, qmax)
            check = row_flags != 0  # (a NaN or an inf: see codes.quotient)
            if row_flags and not ignore:  # (the caller raises)
                k += 1
                continue
        nan = False
        for g in range(srow.size):  # (bq > 1: a scale per column is quantize_columns')
            s, z = srow[g], zrow[g]
            for start in range(g * bq, min(g * bq + bq, Q), step):
                stop = min(start + step, g * bq + bq, Q)
                if fused:  # (see above)
                    prefetch_span(flat, r * Q + start + AHEAD, step)
                xs = row[start:stop]
                if not fake and bits < 8:  # codes in cache, then packed
                    cs = scratch[:xs.size]
                    if check:  # (constant flags in each copy of the loop: see columns)
                        nan |= code_piece(xs, srow, zrow, s, z, False, qmin, qmax, False,
                                           cs, True)
                    else:
                        code_piece(xs, srow, zrow, s, z, False, qmin, qmax, False, cs,
                                    False)
                    pack_at(cs, base + r * Q + start, bits, packed)
                else:
                    out = out3[p, k, start:stop]
                    piece = buf[:xs.size] if stream else out
                    if check:
                        nan |= code_piece(xs, srow, zrow, s, z, False, qmin, qmax, fake,
                                           piece, True)
                    else:
                        code_piece(xs, srow, zrow, s, z, False, qmin, qmax, fake, piece,
                                    False)
                    if stream:
                        stream_out(out, piece)
        flags |= NAN if nan else 0
        k += 1
    finish_stream(stream)
    swap_fp_control(saved)
    return flags


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def quantize_rows_parallel(x3, bp, bk, bq, scale3, zero3, qmin, qmax, out3, bits, base,
                       align, scratch, packed, stream, check, fused, symmetric, ignore):
    """Chunks of rows, each starting on a multiple of ``align`` rows (a byte boundary of
    packed codes); one row of ``scratch`` per chunk.  Returns the flags of all chunks."""
    rows, nchunks = x3.shape[0] * x3.shape[1], scratch.shape[0]
    flags = np.zeros(nchunks, np.int64)
    for c in prange(nchunks):
        r0, r1 = chunk_rows(rows, c, nchunks, align)
        flags[c] = quantize_rows(x3, bp, bk, bq, scale3, zero3, qmin, qmax, r0, r1, out3,
                                 bits, base, scratch[c], packed, stream=stream, check=check,
                                 fused=fused, symmetric=symmetric, ignore=ignore)
    return or_all(flags)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def quantize_columns_parallel(x3, bp, bk, scale3, zero3, qmin, qmax, out3, bits, base,
                               align, scratch, packed, check, fused, symmetric, ignore,
                               zero_free):
    """``quantize_rows_parallel`` for ``quantize_columns`` (compiled apart: a per-tensor
    quantize does not compile the per-column loops)."""
    rows, nchunks = x3.shape[0] * x3.shape[1], scratch.shape[0]
    flags = np.zeros(nchunks, np.int64)
    for c in prange(nchunks):
        r0, r1 = chunk_rows(rows, c, nchunks, align)
        flags[c] = quantize_columns(x3, bp, bk, scale3, zero3, qmin, qmax, r0, r1, out3, bits,
                                    base, scratch[c], packed, check=check, fused=fused,
                                    symmetric=symmetric, ignore=ignore, zero_free=zero_free)
    return or_all(flags)


@njit(cache=True, nogil=True, inline="always")
def or_all(flags):
    """The flags of every chunk in one (here, not by a NumPy call after the kernel)."""
    every = 0
    for f in flags:
        every |= f
    return every


@njit(cache=True, nogil=True, inline="always")
def chunk_rows(rows, c, nchunks, align):
    """Rows ``r0..r1`` of chunk ``c``: starts on multiples of ``align`` rows."""
    r0 = c * rows // nchunks // align * align
    return r0, rows if c == nchunks - 1 else (c + 1) * rows // nchunks // align * align
