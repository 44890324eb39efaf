"""Calibration kernels (CPU): per-block ranges and histograms of a batch, the exact
re-binning of a histogram whose range doubles, and the threshold searches over
histograms (KL divergence, quantization MSE).

Blocks are those of the canonical view ``x3`` of shape ``(P, K, Q)`` with blocks
``(bp, bk, bq)`` (``fastq.core.granularity``); block ``b`` is the C-order index of its
cell in the grid ``(ceil(P/bp), ceil(K/bk), ceil(Q/bq))``.  Every kernel writes into the
arrays it is given (accumulating where it says so) and allocates nothing; the searches
run one block per ``prange`` iteration.

A block's histogram has ``nbins`` (even) equal bins over ``[-m, m]``; its range only
ever grows by doubling (``m = m0 * 2**k``), so every old bin falls whole into one new
bin and merging loses nothing (``rebin``).
"""
import math

import numpy as np
from numba import njit, prange

from .linear.params import scale_zero


@njit(cache=True, nogil=True, inline="always")
def _block_bounds(b, P, K, Q, bp, bk, bq):
    """``(p0, p1, k0, k1, q0, q1)`` of block ``b`` of the grid."""
    g1, g2 = -(-K // bk), -(-Q // bq)
    i, rest = b // (g1 * g2), b % (g1 * g2)
    j, l = rest // g2, rest % g2
    return (i * bp, min(i * bp + bp, P), j * bk, min(j * bk + bk, K),
            l * bq, min(l * bq + bq, Q))


@njit(cache=True, nogil=True, inline="always")
def _one_block_minmax(x3, p0, p1, k0, k1, q0, q1):
    """``(min, max, NaNs, infs)`` of the finite values of one block.  The main loop has
    no branch (selects only, NaN failing every comparison); a block holding an inf is
    read again without it (rare)."""
    low, high = np.float32(np.inf), np.float32(-np.inf)
    nans = 0
    for p in range(p0, p1):
        for k in range(k0, k1):
            row = x3[p, k]
            for q in range(q0, q1):
                v = row[q]
                low = v if v < low else low
                high = v if v > high else high
                nans += v != v
    infs = 0
    if low == -np.inf or high == np.inf:
        low, high = np.float32(np.inf), np.float32(-np.inf)
        for p in range(p0, p1):
            for k in range(k0, k1):
                row = x3[p, k]
                for q in range(q0, q1):
                    v = row[q]
                    if abs(v) == np.inf:
                        infs += 1
                    elif v == v:
                        low, high = min(low, v), max(high, v)
    return low, high, nans, infs


@njit(parallel=True, cache=True, nogil=True)
def block_minmax(x3, blocks3, lo, hi, nonfinite):
    """Per block, the min and max of its finite values into ``lo[b]``, ``hi[b]``
    (float32; ``+inf``/``-inf`` when it has none) and how many NaN and inf it holds into
    ``nonfinite[b, 0]``, ``nonfinite[b, 1]``."""
    P, K, Q = x3.shape
    bp, bk, bq = blocks3
    for b in prange(lo.size):
        p0, p1, k0, k1, q0, q1 = _block_bounds(b, P, K, Q, bp, bk, bq)
        lo[b], hi[b], nonfinite[b, 0], nonfinite[b, 1] = _one_block_minmax(
            x3, p0, p1, k0, k1, q0, q1)


@njit(parallel=True, cache=True, nogil=True)
def block_histogram(x3, blocks3, half_range, finite_max, counts):
    """Add each block's finite values to its histogram ``counts[b]`` (int64, ``nbins``
    equal bins over ``[-half_range[b], half_range[b]]``): bin ``floor((v + m) * nbins /
    (2m))`` in float64, clipped to the first and last bins (``np.histogram``'s rule, the
    top edge in the last bin); a block of ``m == 0`` counts in the bin of 0, ``nbins/2``.
    ``finite_max`` is the largest finite value of ``x3``'s dtype."""
    P, K, Q = x3.shape
    bp, bk, bq = blocks3
    nbins = counts.shape[1]
    for b in prange(half_range.size):
        p0, p1, k0, k1, q0, q1 = _block_bounds(b, P, K, Q, bp, bk, bq)
        m = half_range[b]
        norm = nbins / (2.0 * m) if m > 0 else 0.0
        low = -m if m > 0 else 0.0
        centre = nbins // 2 if m == 0 else 0
        top = np.float64(nbins - 1 - centre)
        hist = counts[b]
        for p in range(p0, p1):
            for k in range(k0, k1):
                row = x3[p, k]
                for q in range(q0, q1):
                    v = row[q]
                    if not abs(v) <= finite_max:  # NaN or inf: not counted (one compare)
                        continue
                    t = min(max((np.float64(v) - low) * norm, 0.0), top)
                    hist[int(t) + centre] += 1


@njit(cache=True, nogil=True)
def rebin(counts, doublings, scratch):
    """Re-bin each histogram ``counts[b]`` whose range doubles ``doublings[b]`` times:
    old bin ``i`` falls whole into new bin ``(i + (nbins/2) (2**k - 1)) >> k`` (exact:
    both ranges are centred on 0 and the new bin width is ``2**k`` old ones).
    ``scratch`` is one int64 row of ``nbins``."""
    nbins = counts.shape[1]
    for b in range(counts.shape[0]):
        k = doublings[b]
        if k <= 0:
            continue
        k = min(k, 62)
        shift = (nbins // 2) * ((1 << k) - 1)
        scratch[:] = 0
        for i in range(nbins):
            scratch[min((i + shift) >> k, nbins - 1)] += counts[b, i]
        counts[b, :] = scratch


@njit(cache=True, nogil=True, inline="always")
def _smoothed(value, zeros, nonzeros, eps):
    """ONNX Runtime's ``smooth_distribution`` of one entry, in float32 as it does."""
    if value == 0:
        return np.float32(eps)
    return np.float32(value) + np.float32(-eps * zeros / nonzeros)


@njit(cache=True, nogil=True)
def kl_divergence(hist, csum, cnz, start, end, n_quantized, eps):
    """ONNX Runtime's KL divergence (``HistogramCollector.get_entropy_threshold``) of the
    candidate window ``hist[start:end]`` (``csum``, ``cnz``: prefix sums of the counts
    and of the non-zero bins, ``nbins + 1`` each): ``p`` is the window with the outside
    counts added to its first and last bins; ``q`` the window merged into
    ``n_quantized`` bins of ``L // n_quantized`` (the remainder joins the last, and the
    bins past the last whole group get 0), each spread back in integers (truncated)
    over every bin of its group, divided by the group's non-zero bins of ``p``; both
    smoothed (zeros -> ``eps``, ``eps * zeros / nonzeros`` off the others, in float32);
    ``inf`` when either is all zero.  One pass over the window:
    ``KL = sum(ps * (log ps - log qs)) / PS - log PS + log QS`` of the unnormalized
    smoothed ``ps``, ``qs`` and their sums."""
    L = end - start
    nm = L // n_quantized
    left, right = csum[start], csum[hist.size] - csum[end]
    p_first, p_last = hist[start] + left, hist[end - 1] + right
    # zeros of p: the window's, corrected at its two ends
    nonzero = cnz[end] - cnz[start]
    nonzero += (p_first != 0) - (hist[start] != 0) + (p_last != 0) - (hist[end - 1] != 0)
    p_zeros = L - nonzero
    # q, a value per group: zeros and sum (the bins past the last whole group are 0)
    q_zeros = L - n_quantized * nm
    for g in range(n_quantized):
        qv = _group_q(hist, csum, cnz, start, end, g, nm, n_quantized, p_first, p_last)
        q_zeros += nm if qv == 0 else 0
    if p_zeros == L or q_zeros == L:
        return np.inf
    p_nonzeros, q_nonzeros = L - p_zeros, L - q_zeros
    qs_sum = (L - n_quantized * nm) * np.float64(_smoothed(0, q_zeros, q_nonzeros, eps))
    weighted, ps_sum = 0.0, 0.0
    for g in range(n_quantized + 1):
        g0, g1 = g * nm, (g * nm + nm if g < n_quantized else L)
        qv = 0
        if g < n_quantized:
            qv = _group_q(hist, csum, cnz, start, end, g, nm, n_quantized, p_first, p_last)
        qs = np.float64(_smoothed(qv, q_zeros, q_nonzeros, eps))
        if g < n_quantized:
            qs_sum += nm * qs
        log_qs = math.log(qs)
        for j in range(g0, g1):
            pj = p_first if j == 0 else (p_last if j == L - 1 else hist[start + j])
            ps = np.float64(_smoothed(pj, p_zeros, p_nonzeros, eps))
            ps_sum += ps
            weighted += ps * (math.log(ps) - log_qs)
    return weighted / ps_sum - math.log(ps_sum) + math.log(qs_sum)


@njit(cache=True, nogil=True, inline="always")
def _group_q(hist, csum, cnz, start, end, g, nm, n_quantized, p_first, p_last):
    """The integer value ``q`` takes over group ``g`` of the window (see
    ``kl_divergence``): the group's counts (the last group: to the window's end) over
    its bins where ``p`` is non-zero, truncated; 0 when there are none."""
    a, b = start + g * nm, start + g * nm + nm
    total = csum[end if g == n_quantized - 1 else b] - csum[a]
    norm = cnz[b] - cnz[a]
    if a == start:
        norm += (p_first != 0) - (hist[start] != 0)
    if a <= end - 1 < b:
        norm += (p_last != 0) - (hist[end - 1] != 0)
    return total // norm if norm else 0


@njit(parallel=True, cache=True, nogil=True)
def entropy_search(counts, csum, cnz, n_quantized, eps, best):
    """Per block, the half-width ``i`` (``n_quantized // 2`` to ``nbins // 2``) of the
    window ``[nbins/2 - i, min(nbins/2 + i + 1, nbins))`` of least ``kl_divergence``
    (the first on ties, as ``np.argmin``) into ``best[b]``; ``csum[b]``, ``cnz[b]`` the
    prefix sums of ``counts[b]`` and of its non-zero bins."""
    nbins = counts.shape[1]
    zero = nbins // 2
    for b in prange(counts.shape[0]):
        best_i, best_kl = n_quantized // 2, np.inf
        for i in range(n_quantized // 2, zero + 1):
            kl = kl_divergence(counts[b], csum[b], cnz[b], zero - i, min(zero + i + 1, nbins),
                               n_quantized, eps)
            if kl < best_kl:
                best_i, best_kl = i, kl
        best[b] = best_i


@njit(cache=True, nogil=True, inline="always")
def _square_error(u0, u1, r):
    """Integral of ``(v - r)**2`` over ``[u0, u1]``."""
    return ((u1 - r) ** 3 - (u0 - r) ** 3) / 3.0


@njit(cache=True, nogil=True)
def histogram_mse(hist, m, data_lo, data_hi, lo, hi, symmetric, qmin, qmax):
    """Expected squared quantization error (a sum over the values) of the histogram
    ``hist`` over ``[-m, m]`` when quantized with the parameters (``scale_zero``) of the
    range ``[lo, hi]``: each bin's count spread uniformly over the bin within the
    observed ``[data_lo, data_hi]``, and the error integrated exactly over every code
    the bin meets, clipped codes included."""
    scale, zero = scale_zero(np.float32(lo), np.float32(hi), symmetric, qmin, qmax)
    s, z = np.float64(scale), np.float64(zero)
    nbins = hist.size
    width = 2.0 * m / nbins
    total = 0.0
    for i in range(nbins):
        n = hist[i]
        if n == 0:
            continue
        a = max(-m + i * width, data_lo)
        b = min(-m + (i + 1) * width, data_hi)
        if not b > a:  # (a point mass, or a bin outside the data: its centre)
            v = min(max(0.5 * (a + b), data_lo), data_hi)
            c = min(max(np.rint(v / s) + z, qmin), qmax)
            total += n * (v - (c - z) * s) ** 2
            continue
        c0 = min(max(np.rint(a / s) + z, qmin), qmax)
        c1 = min(max(np.rint(b / s) + z, qmin), qmax)
        if c0 == c1:
            err = _square_error(a, b, (c0 - z) * s)
        else:  # the ends of [a, b], and whole cells between: s**3 / 12 each (never clipped)
            err = _square_error(a, (c0 - z + 0.5) * s, (c0 - z) * s) + \
                _square_error((c1 - z - 0.5) * s, b, (c1 - z) * s) + \
                (c1 - c0 - 1) * s * s * s / 12.0
        total += n * err / (b - a)
    return total


@njit(parallel=True, cache=True, nogil=True)
def mse_search(counts, half_range, data_lo, data_hi, fractions, symmetric, qmin, qmax,
               best_lo, best_hi):
    """Per block, the clipping range of least ``histogram_mse`` among ``fraction *
    [lo, hi]`` for each of ``fractions`` (``[lo, hi]`` the min/max range with 0; a
    fraction of 1 is the min/max observer's own range) into ``best_lo[b]``, ``best_hi[b]``
    (the larger fraction on ties)."""
    for b in prange(counts.shape[0]):
        lo, hi = min(data_lo[b], 0.0), max(data_hi[b], 0.0)
        best_err = np.inf
        best_lo[b], best_hi[b] = lo, hi
        if half_range[b] == 0:
            continue
        for f in range(fractions.size - 1, -1, -1):
            a, c = lo * fractions[f], hi * fractions[f]
            err = histogram_mse(counts[b], half_range[b], data_lo[b], data_hi[b], a, c,
                                symmetric, qmin, qmax)
            if err < best_err:
                best_err, best_lo[b], best_hi[b] = err, a, c
