"""``fastq inspect FILE [--reference REF] [--plot OUT.png]``: what a model file holds.

One row per tensor: its format (a QTensor's dtype and granularity, or the array's
dtype), shape, bytes and bits per element; with ``--reference`` (the original model),
the SQNR of each tensor against its original (``fq.metrics``), and ``--plot`` draws
those SQNRs as bars beside a histogram of the errors, each tensor's error divided by
its original's RMS so that tensors of any scale share one axis (matplotlib, Agg).
"""
import numpy as np

from .console import format_table, human_bytes

HISTOGRAM_SAMPLE = 20000  # errors kept per tensor for the histogram (memory bound)


def register(commands):
    p = commands.add_parser("inspect", help="list a model file's tensors (and their error)")
    p.add_argument("file", help="a .safetensors or .gguf file")
    p.add_argument("--reference", help="the original model: adds each tensor's SQNR")
    p.add_argument("--plot", help="write per-tensor SQNR bars and an error histogram (.png)")
    p.set_defaults(run=run)


def describe(value):
    """``(format, shape, bytes, bits per element)`` of a QTensor or an array."""
    from .. import ops
    if isinstance(value, ops.QTensor):
        g = value.granularity
        grain = "" if g is None else " " + repr(g).replace("fq.", "")
        return f"{value.dtype}{grain}", value.shape, value.nbytes, value.bits_per_element
    return str(value.dtype), value.shape, value.nbytes, 8.0 * value.dtype.itemsize


def run(args):
    from .. import ops
    from ..io.convert import InputTensors
    if args.plot and not args.reference:
        raise ValueError("--plot needs --reference (the errors are against the original)")
    if args.plot:
        from ..io.output import output_folder
        output_folder(args.plot)
    tensors = InputTensors(args.file)
    reference = InputTensors(args.reference) if args.reference else None
    rows, sqnrs, errors = [], [], []
    for name in tensors.names:
        value = tensors.get(name)
        fmt, shape, nbytes, bits = describe(value)
        row = [name, fmt, shape, nbytes, bits]
        if reference is not None:
            row.append(None)
            if name in reference.names:
                original = reference.get(name)
                if getattr(original, "dtype", np.dtype(int)).kind in "fV" or \
                        not isinstance(original, np.ndarray):
                    x = _as_float32(original)
                    x_hat = _as_float32(value)
                    if x.shape == x_hat.shape and x.size:
                        row[-1] = float(ops.metrics(x, x_hat).sqnr_db)
                        if np.isfinite(row[-1]):  # (the plot shows what changed)
                            sqnrs.append((name, row[-1]))
                            errors.append(_error_sample(x, x_hat))
        rows.append(row)
        del value
    headers = ["name", "format", "shape", "bytes", "bits/elem"] + (["sqnr_db"] if reference else [])
    print(format_table(headers, rows))
    total = sum(r[3] for r in rows)
    print(f"\n{args.file}: {len(rows)} tensors, {human_bytes(total)}")
    if args.plot:
        plot(sqnrs, errors, args.plot, args.file)
        print(f"wrote {args.plot}")
    return 0


def _as_float32(value):
    from .. import ops
    if isinstance(value, ops.QTensor):
        return value.dequantize()
    return np.asarray(value).astype(np.float32)


def _error_sample(x, x_hat):
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) or 1.0
    error = ((x_hat - x) / rms).reshape(-1)
    if error.size > HISTOGRAM_SAMPLE:  # a fixed stride: the same picture every run
        error = error[::error.size // HISTOGRAM_SAMPLE][:HISTOGRAM_SAMPLE]
    return error


def plot(sqnrs, errors, path, title):
    """Per-tensor SQNR bars and the pooled relative error histogram, written as PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError('--plot needs matplotlib: pip install "fastq[plot]"') from None
    from ..io.output import atomic_output
    if not sqnrs:
        raise ValueError("--plot: no tensor differs from a float original in --reference")
    fig, (bars, hist) = plt.subplots(1, 2, figsize=(12, max(4, 0.25 * len(sqnrs) + 1)),
                                     gridspec_kw={"width_ratios": [3, 2]})
    names = [n for n, _ in sqnrs]
    bars.barh(range(len(names)), [v for _, v in sqnrs], color="tab:blue")
    bars.set_yticks(range(len(names)), names, fontsize=7)
    bars.invert_yaxis()
    bars.set_xlabel("SQNR (dB, higher is better)")
    bars.set_title("per-tensor SQNR")
    pooled = np.concatenate(errors)
    hist.hist(pooled, bins=101, color="tab:orange", log=True)
    hist.set_xlabel("error / RMS of the original tensor")
    hist.set_ylabel("count (log)")
    hist.set_title("quantization error")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
