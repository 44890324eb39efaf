"""``fq.Calibrator``: quantization parameters from a stream of batches, in bounded
memory (no batch is kept)."""
import math

import numpy as np

from ..core import checks
from ..core.codes import dtype_info
from ..core.granularity import PerTensor, as_granularity
from ..ops import QParams
from ..ops.linear import qparams_from_range
from .blocks import as_batch, parameter_grid
from .histograms import BlockHistograms, block_ranges, check_bins, magnitude

OBSERVERS = ("minmax", "moving_average", "percentile", "entropy", "mse")
HISTOGRAM_OBSERVERS = ("percentile", "entropy", "mse")
# The options each observer takes, and their defaults.
OPTIONS = {
    "minmax": {},
    "moving_average": {"averaging_constant": 0.01},  # torch.ao's MovingAverageMinMaxObserver
    "percentile": {"percentile": 99.99, "num_bins": None},
    "entropy": {"num_bins": None, "num_quantized_bins": 128},  # ONNX Runtime's defaults
    "mse": {"num_bins": None, "steps": 100},
}


class Calibrator:
    """Observe batches, then give the scale and zero point of their range.

    Parameters
    ----------
    dtype : str
        Integer dtype of the codes (``"int8"``, ``"uint8"``, ``"int16"``, ``"int4"``, ...).
    granularity, scheme, narrow_range
        As in :func:`fastq.quantize`; every observer works for every granularity, each
        parameter block (tensor, channel, group, block) observed on its own.
    observer : str
        ``"minmax"``: the min and max of everything seen.
        ``"moving_average"``: PyTorch's ``MovingAverageMinMaxObserver`` (the first batch
        sets min and max, then ``min += averaging_constant * (batch_min - min)``, in
        float32; option ``averaging_constant=0.01``).
        ``"percentile"``: ONNX Runtime's percentile calibration over a histogram
        (options ``percentile=99.99``, ``num_bins``): symmetric, the magnitude below
        which ``percentile`` % of the values lie; asymmetric, ``(100 - p) / 2`` % cut on
        each side.
        ``"entropy"``: the KL-divergence threshold of TensorRT, as ONNX Runtime's
        ``HistogramCollector.get_entropy_threshold`` computes it (options ``num_bins``,
        ``num_quantized_bins=128``).
        ``"mse"``: the range ``f * [min, max]`` (``f`` in ``1/steps .. 1``) whose
        quantization has the least expected squared error over the histogram, per
        block (option ``steps=100``); ``f = 1`` is min/max, so it is never worse on the
        histogram.
        Histograms have ``num_bins`` bins per block (default 2048, fewer when there are
        many blocks: at most 4M counts in all), each over ``[-m, m]``, ``m`` doubling as
        the data grows (an exact re-binning).  Thresholds are clipped to the observed
        min and max, and every range includes 0 (the rules of ``fq.choose_qparams``).
    nan_policy : {"raise", "ignore"}
        NaN or inf in a batch raise ValueError, or are left out of the statistics.

    Examples
    --------
    >>> cal = Calibrator("int8", observer="percentile", percentile=99.9)
    >>> for batch in batches: cal.update(batch)          # doctest: +SKIP
    >>> p = cal.qparams()                                  # doctest: +SKIP
    """

    def __init__(self, dtype, granularity="tensor", scheme="asymmetric", observer="minmax",
                 narrow_range=False, nan_policy="raise", **options):
        self.qmin, self.qmax, _, self.code_dtype = dtype_info(dtype)
        self.dtype = dtype
        self.granularity = as_granularity(granularity)
        self.scheme = checks.check_choice(scheme, "scheme", ("asymmetric", "symmetric"))
        self.observer = checks.check_choice(observer, "observer", OBSERVERS)
        self.narrow_range = checks.check_bool(narrow_range, "narrow_range")
        if self.narrow_range and self.qmin < 0:
            self.qmin = -self.qmax
        self.nan_policy = checks.check_choice(nan_policy, "nan_policy", ("raise", "ignore"))
        unknown = set(options) - set(OPTIONS[observer])
        if unknown:
            raise TypeError(f"observer {observer!r} takes no option {sorted(unknown)[0]!r} "
                            f"(it takes {sorted(OPTIONS[observer]) or 'none'})")
        self.options = {**OPTIONS[observer], **options}
        self._check_options()
        self.reset()

    def _check_options(self):
        o = self.options
        if "averaging_constant" in o:
            c = o["averaging_constant"]
            if not isinstance(c, (int, float)) or not 0 < c <= 1:
                raise ValueError(f"averaging_constant must be in (0, 1], got {c!r}")
        if "percentile" in o:
            p = o["percentile"]
            if not isinstance(p, (int, float)) or not 0 <= p <= 100:
                raise ValueError(f"percentile must be in [0, 100], got {p!r}")
        for key in ("num_quantized_bins", "steps"):
            if key in o and (isinstance(o[key], bool) or not isinstance(o[key], int)
                             or o[key] < 1):
                raise ValueError(f"{key} must be an int >= 1, got {o[key]!r}")
        if o.get("num_bins") is not None:
            check_bins(o["num_bins"], 1)

    def reset(self):
        """Forget every batch seen."""
        self.shape = None
        self.batches = 0
        self.lo = self.hi = None
        self.histograms = None

    def update(self, batch):
        """Observe one batch (an array of float16/bfloat16/float32/float64; the same
        shape every time unless per tensor); returns ``self``."""
        x = as_batch(batch)
        per_tensor = isinstance(self.granularity, PerTensor)
        if self.shape is not None and not per_tensor and x.shape != self.shape:
            raise ValueError(f"batch has shape {x.shape}, earlier batches {self.shape}: "
                             f"batches must have one shape for {self.granularity!r}")
        if self.shape is None:
            self.granularity.blocks(x.shape)  # (checks the axis / block rank)
            grid = parameter_grid(x.shape, self.granularity)
            self.shape, self.grid = x.shape, grid
            self.param_shape = self.granularity.param_shape(x.shape)
            self.nblocks = math.prod(grid)
        lo, hi, nans, infs = block_ranges(x, self.granularity if not per_tensor else "tensor",
                                          self.nblocks)
        if self.nan_policy == "raise" and (nans or infs):
            raise ValueError(f"batch contains {'NaN' if nans else 'inf'}: the range cannot be "
                             "computed (use nan_policy='ignore')")
        self._observe_range(lo, hi)
        if self.observer in HISTOGRAM_OBSERVERS:
            if self.histograms is None:
                bins = check_bins(self.options["num_bins"], self.nblocks)
                self.histograms = BlockHistograms(self.nblocks, bins, self.granularity)
            self.histograms.widen(magnitude(lo, hi))
            self.histograms.add(x)
        self.batches += 1
        return self

    def _observe_range(self, lo, hi):
        if self.lo is None:
            self.lo, self.hi = lo, hi
            return
        seen = np.isfinite(lo)  # (blocks of the batch with finite values)
        if self.observer == "moving_average":  # torch: min_val + c * (cur - min_val), float32
            c = np.float32(self.options["averaging_constant"])
            first = ~np.isfinite(self.lo)
            new_lo = np.where(first, lo, self.lo + c * (lo - self.lo))
            new_hi = np.where(first, hi, self.hi + c * (hi - self.hi))
            self.lo = np.where(seen, new_lo, self.lo).astype(np.float32)
            self.hi = np.where(seen, new_hi, self.hi).astype(np.float32)
        else:
            self.lo, self.hi = np.minimum(self.lo, lo), np.maximum(self.hi, hi)

    def ranges(self):
        """The clipping range ``(lo, hi)`` per parameter block (float64, the parameter
        shape), before 0 is included."""
        if not self.batches:
            raise ValueError("no batch observed: call update() with at least one batch "
                             "(the dataset is empty)")
        seen = np.isfinite(self.lo)
        data_lo = np.where(seen, self.lo, 0).astype(np.float64)
        data_hi = np.where(seen, self.hi, 0).astype(np.float64)
        o, h = self.options, self.histograms
        symmetric = self.scheme == "symmetric"
        if self.observer == "percentile":
            lo, hi = h.percentile(o["percentile"], symmetric, data_lo, data_hi)
        elif self.observer == "entropy":
            lo, hi = h.entropy(o["num_quantized_bins"], data_lo, data_hi)
        elif self.observer == "mse":
            lo, hi = h.mse(o["steps"], symmetric, self.qmin, self.qmax, data_lo, data_hi)
        else:
            lo, hi = data_lo, data_hi
        return lo.reshape(self.param_shape), hi.reshape(self.param_shape)

    def qparams(self):
        """:class:`fastq.QParams` of the observed range(s), by ``fq.choose_qparams``'s
        rules (range ``[min(lo, 0), max(hi, 0)]``, float32 scale, integral zero point)."""
        lo, hi = self.ranges()
        lo = np.minimum(lo, 0).astype(np.float32)
        hi = np.maximum(hi, 0).astype(np.float32)
        return QParams(*qparams_from_range(lo, hi, self.scheme, self.qmin, self.qmax,
                                           self.code_dtype))

    def __repr__(self):
        return (f"fq.Calibrator({self.dtype!r}, granularity={self.granularity!r}, "
                f"scheme={self.scheme!r}, observer={self.observer!r}, batches={self.batches})")
