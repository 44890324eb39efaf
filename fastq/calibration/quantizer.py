"""``fq.Quantizer``: calibrate on data once, then quantize with those parameters, in
the fit / transform style of a data pipeline."""
import numpy as np

from ..ops import dequantize, quantize
from .calibrator import Calibrator


def batches_of(data):
    """The batches of ``data``: one array (anything NumPy or CUDA takes as one), or the
    arrays of an iterable."""
    if isinstance(data, np.ndarray) or np.isscalar(data) or hasattr(data, "__array__") \
            or hasattr(data, "__array_interface__") or hasattr(data, "__cuda_array_interface__"):
        return [data]
    try:
        return iter(data)
    except TypeError:
        raise TypeError("data must be an array or an iterable of arrays, got "
                        f"{type(data).__name__}") from None


class Quantizer:
    """Quantization with parameters calibrated on data (``fit``), applied to new data
    (``transform``); picklable.

    Parameters
    ----------
    dtype, granularity, scheme, observer, narrow_range, nan_policy, **options
        As :class:`fastq.Calibrator`.  ``transform`` is ``fq.quantize`` with the fitted
        scale and zero point (static quantization: values beyond the range saturate).

    Attributes
    ----------
    qparams_ : QParams
        The fitted parameters (after ``fit`` / ``partial_fit``).

    Examples
    --------
    >>> qz = Quantizer("int8", granularity=PerChannel(-1), observer="percentile",
    ...                percentile=99.99).fit(batches)          # doctest: +SKIP
    >>> qt = qz.transform(x); x_hat = qz.inverse_transform(qt)  # doctest: +SKIP
    """

    def __init__(self, dtype, granularity="tensor", scheme="asymmetric", observer="minmax",
                 narrow_range=False, nan_policy="raise", **options):
        self.calibrator = Calibrator(dtype, granularity=granularity, scheme=scheme,
                                     observer=observer, narrow_range=narrow_range,
                                     nan_policy=nan_policy, **options)
        self.qparams_ = None

    def fit(self, data):
        """Calibrate on ``data`` (an array or an iterable of arrays) from scratch;
        returns ``self``.  An empty iterable raises ValueError."""
        self.calibrator.reset()
        self.qparams_ = None
        for batch in batches_of(data):
            self.calibrator.update(batch)
        if not self.calibrator.batches:
            raise ValueError("data is empty: fit needs at least one batch")
        self.qparams_ = self.calibrator.qparams()
        return self

    def partial_fit(self, batch):
        """Observe one more batch (a stream); the parameters follow everything seen."""
        self.calibrator.update(batch)
        self.qparams_ = self.calibrator.qparams()
        return self

    def transform(self, x):
        """``fq.quantize`` of ``x`` with the fitted parameters -> :class:`fastq.QTensor`."""
        if self.qparams_ is None:
            raise ValueError("this Quantizer is not fitted yet: call fit() or partial_fit() "
                             "before transform()")
        c = self.calibrator
        return quantize(x, c.dtype, scheme=c.scheme, granularity=c.granularity,
                        scale=self.qparams_.scale, zero_point=self.qparams_.zero_point,
                        narrow_range=c.narrow_range, nan_policy=c.nan_policy)

    def fit_transform(self, data):
        """``fit(data)``, then ``transform`` of ``data`` (one array)."""
        return self.fit(data).transform(data)

    @staticmethod
    def inverse_transform(qt):
        """The float32 values of ``qt`` (``fq.dequantize``)."""
        return dequantize(qt)

    def __repr__(self):
        c = self.calibrator
        return (f"fq.Quantizer({c.dtype!r}, granularity={c.granularity!r}, scheme={c.scheme!r}, "
                f"observer={c.observer!r}, fitted={self.qparams_ is not None})")
