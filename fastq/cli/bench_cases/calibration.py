"""Benchmark cases of calibration and whole-model quantization: a histogram update
beside ``np.histogram``, and ``quantize_model`` over many 256x1024 tensors beside a
Python loop of ``fq.quantize`` and of ``torch.quantize_per_channel``."""
import numpy as np

ROWS, COLS = 256, 1024  # one tensor of the many-tensors case


def cases(x, peers):
    from ... import calibration, ops
    out = []
    cal = calibration.Calibrator("int8", observer="percentile", num_bins=2048)
    row = {"fastq": lambda: cal.update(x), "numpy": lambda: np.histogram(x, 2048)}
    out.append(("histogram update 2048 bins (range + counts)", 4 * x.size, row))

    rows = ROWS if x.size >= ROWS * COLS else max(1, x.size // COLS // 4)
    tensors = x[:x.size // (rows * COLS) * rows * COLS].reshape(-1, rows, COLS)
    weights = {f"layer{i}.weight": t for i, t in enumerate(tensors)}
    kwargs = dict(scheme="symmetric", granularity=ops.PerChannel(0), narrow_range=True)

    def fastq_loop():
        return {k: ops.quantize(w, "int8", **kwargs) for k, w in weights.items()}

    row = {"fastq": lambda: calibration.quantize_model(weights, "dynamic_range"),
           "fastq loop": fastq_loop}
    torch = peers.get("torch")
    if torch is not None:
        torch_weights = {k: torch.from_numpy(w) for k, w in weights.items()}

        def torch_loop():
            out = {}
            for k, w in torch_weights.items():
                scale = (w.abs().amax(dim=1) / 127).clamp_min(1e-12).double()
                zero = torch.zeros(w.shape[0], dtype=torch.int64)
                out[k] = torch.quantize_per_channel(w, scale, zero, 0, torch.qint8)
            return out
        row["torch"] = torch_loop
    out.append((f"quantize_model {len(weights)}x({rows}x{COLS}) int8 per-channel",
                5 * x.size, row))
    return out
