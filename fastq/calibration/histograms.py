"""Per-block histograms of everything observed, in bounded memory, and the clipping
ranges read from them (percentile, KL divergence, quantization MSE).

Each block keeps ``nbins`` counts over ``[-m, m]``.  The first batch sets ``m`` to its
largest magnitude; a later batch reaching past ``m`` doubles it as often as needed and
re-bins the counts exactly (``fastq.kernels.cpu.histogram.rebin``: every old bin falls
whole into one new bin), so memory stays ``blocks * nbins`` counts however many batches
arrive.  ONNX Runtime's collector instead widens its histogram by adding bins, and its
calibrators keep the activations themselves.
"""
import math

import numpy as np

from ..backend import CPU
from ..runtime.threads import parallel_region
from .blocks import kernel_views, view_blocks

DEFAULT_BINS = 2048  # ONNX Runtime's HistogramCalibrater default for entropy/percentile
# Without an explicit num_bins, all blocks together keep at most this many counts (32 MB):
# per-group calibration of a big tensor gets fewer bins per group.
MAX_COUNTS = 1 << 22
MIN_DEFAULT_BINS = 256
SMOOTHING_EPS = 1e-4  # ONNX Runtime's smooth_distribution eps
FLOAT32_MAX = np.float32(np.finfo(np.float32).max)


def default_bins(nblocks):
    bins = min(DEFAULT_BINS, MAX_COUNTS // max(nblocks, 1))
    return max(MIN_DEFAULT_BINS, bins // 4 * 4)


def kernels():
    return CPU.kernels("histogram")


class BlockHistograms:
    """``nbins`` counts per block over ``[-half_range[b], half_range[b]]``."""

    def __init__(self, nblocks, nbins, granularity):
        self.granularity = granularity
        self.half_range = np.zeros(nblocks, np.float64)
        self.counts = np.zeros((nblocks, nbins), np.int64)
        self.seen = False

    @property
    def nbins(self):
        return self.counts.shape[1]

    def widen(self, amax):
        """Grow each block's range to hold ``amax[b]`` (its largest magnitude in the
        batch), doubling it and re-binning its counts."""
        amax = np.asarray(amax, np.float64)
        if not self.seen:
            self.half_range[:] = amax
            self.seen = True
            return
        empty = self.half_range == 0  # (all counts, if any, sit in the bin of 0)
        self.half_range[empty] = amax[empty]
        grow = ~empty & (amax > self.half_range)
        if not grow.any():
            return
        doublings = np.zeros(self.half_range.size, np.int64)
        ratio = amax[grow] / self.half_range[grow]
        k = np.ceil(np.log2(ratio)).astype(np.int64)
        k += self.half_range[grow] * np.exp2(k) < amax[grow]  # (log2 rounding)
        doublings[grow] = k
        kernels().rebin(self.counts, doublings, np.empty(self.nbins, np.int64))
        self.half_range[grow] *= np.exp2(k)

    def add(self, x):
        """Count the finite values of the float32 batch ``x`` (its blocks' ranges already
        widened to hold them)."""
        for x3, blocks3, index in self._views(x):
            if index is None:
                with parallel_region():
                    kernels().block_histogram(x3, blocks3, self.half_range, FLOAT32_MAX,
                                              self.counts)
                continue
            part = np.zeros((view_blocks(x3, blocks3), self.nbins), np.int64)
            with parallel_region():
                kernels().block_histogram(x3, blocks3, self.half_range[index], FLOAT32_MAX,
                                          part)
            np.add.at(self.counts, index, part)

    def _views(self, x):
        return kernel_views(x, self.granularity)

    # -- thresholds: (lo, hi) per block, clipped to the observed [data_lo, data_hi] --

    def edges(self, index):
        """The left edge of bin ``index`` (may be ``nbins``) of each block (float64)."""
        m = self.half_range
        return -m + index * (2.0 * m / self.nbins)

    def percentile(self, percentile, symmetric, data_lo, data_hi):
        """ONNX Runtime's ``compute_percentile``: symmetric, the edge of the histogram
        of magnitudes where its CDF reaches ``percentile / 100`` (``np.searchsorted``,
        left), as ``[-t, t]``; otherwise the edges where the CDF of the signed histogram
        reaches ``(100 - p) / 200`` and ``1 - (100 - p) / 200``.  Then clipped to the
        observed min and max."""
        counts = self.counts.astype(np.float64)
        total = np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        half = self.nbins // 2
        if symmetric:
            magnitude = counts[:, half:] + counts[:, half - 1::-1]
            cdf = np.cumsum(magnitude / total, axis=1)
            idx = (cdf < percentile / 100.0).sum(axis=1)
            t = idx * (self.half_range / half)
            lo, hi = -t, t
        else:
            cut = (100.0 - percentile) / 200.0
            cdf = np.cumsum(counts / total, axis=1)
            lo = self.edges((cdf < cut).sum(axis=1))
            hi = self.edges((cdf < 1.0 - cut).sum(axis=1))
        return np.maximum(lo, data_lo), np.minimum(hi, data_hi)

    def entropy(self, num_quantized_bins, data_lo, data_hi):
        """ONNX Runtime's ``get_entropy_threshold`` (TensorRT's calibration): the window
        ``[nbins/2 - i, nbins/2 + i + 1)`` of least KL divergence between the
        histogram folded into it and its ``num_quantized_bins``-level quantization;
        its edges, clipped to the observed min and max."""
        best = np.empty(self.half_range.size, np.int64)
        csum = np.zeros((self.counts.shape[0], self.nbins + 1), np.int64)
        cnz = np.zeros_like(csum)
        np.cumsum(self.counts, axis=1, out=csum[:, 1:])
        np.cumsum(self.counts != 0, axis=1, out=cnz[:, 1:])
        with parallel_region():
            kernels().entropy_search(self.counts, csum, cnz, int(num_quantized_bins),
                                     SMOOTHING_EPS, best)
        zero = self.nbins // 2
        lo = self.edges(zero - best)
        hi = self.edges(np.minimum(zero + best + 1, self.nbins))
        return np.maximum(lo, data_lo), np.minimum(hi, data_hi)

    def mse(self, steps, symmetric, qmin, qmax, data_lo, data_hi):
        """The range ``f * [min(lo, 0), max(hi, 0)]``, ``f`` in ``1/steps .. 1``, of
        least expected quantization MSE over the histogram
        (``fastq.kernels.cpu.histogram.mse_search``); ``f = 1`` is min/max's range."""
        fractions = np.arange(1, steps + 1, dtype=np.float64) / steps
        lo = np.empty(self.half_range.size, np.float64)
        hi = np.empty(self.half_range.size, np.float64)
        with parallel_region():
            kernels().mse_search(self.counts, self.half_range,
                                 np.asarray(data_lo, np.float64), np.asarray(data_hi, np.float64),
                                 fractions, bool(symmetric), np.float32(qmin), np.float32(qmax),
                                 lo, hi)
        return lo, hi


def block_ranges(x, granularity, nblocks):
    """Per parameter block, the min and max of the finite values of the float32 batch
    ``x`` (``+inf``/``-inf`` for a block without any), and the NaN and inf counts."""
    lo = np.full(nblocks, np.inf, np.float32)
    hi = np.full(nblocks, -np.inf, np.float32)
    nans = infs = 0
    for x3, blocks3, index in kernel_views(x, granularity):
        n = view_blocks(x3, blocks3)
        part_lo, part_hi = (lo, hi) if index is None else (np.empty(n, np.float32),
                                                             np.empty(n, np.float32))
        nonfinite = np.empty((n, 2), np.int64)
        with parallel_region():
            kernels().block_minmax(x3, blocks3, part_lo, part_hi, nonfinite)
        nans, infs = nans + int(nonfinite[:, 0].sum()), infs + int(nonfinite[:, 1].sum())
        if index is not None:
            np.minimum.at(lo, index, part_lo)
            np.maximum.at(hi, index, part_hi)
    return lo, hi, nans, infs


def magnitude(lo, hi):
    """The largest magnitude of each block's finite range (0 for an empty block)."""
    amax = np.maximum(np.abs(lo.astype(np.float64)), np.abs(hi.astype(np.float64)))
    return np.where(np.isfinite(amax), amax, 0.0) if amax.size else amax


def check_bins(num_bins, nblocks):
    """``num_bins`` (None: ``default_bins``) as an even int >= 4."""
    if num_bins is None:
        return default_bins(nblocks)
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)):
        raise TypeError(f"num_bins must be an int, got {type(num_bins).__name__}")
    if num_bins < 4 or num_bins % 2:
        raise ValueError(f"num_bins must be an even int >= 4, got {num_bins}")
    if nblocks * num_bins > 1 << 28:
        raise ValueError(f"num_bins={num_bins} over {nblocks} blocks needs "
                         f"{math.prod((nblocks, num_bins, 8)) >> 20} MB of counts: use fewer")
    return int(num_bins)
