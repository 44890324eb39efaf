"""Benchmark cases of the extended float formats: float8/float4 casts beside ml_dtypes and
torch, scaled float8 quantization, OCP MX, NVFP4 and NF4 (beside gguf's MXFP4 and
bitsandbytes' NF4 where installed)."""
import numpy as np


def cases(x, peers):
    from ... import ops as fq
    n = x.size
    md, torch = peers.get("ml_dtypes"), peers.get("torch")
    out = []
    for name, torch_name in (("float8_e4m3fn", "float8_e4m3fn"), ("float8_e5m2", "float8_e5m2"),
                             ("float4_e2m1fn", None)):
        if md is None:
            break
        dt = getattr(md, name)
        o8, o32 = np.empty(n, dt), np.empty(n, np.float32)
        row = {"fastq": lambda dt=dt, o8=o8, name=name: fq.cast(x, name, out=o8),
               "ml_dtypes": lambda dt=dt: x.astype(dt)}
        if torch is not None and torch_name:
            xt, tdt = torch.from_numpy(x), getattr(torch, torch_name)
            row["torch"] = lambda xt=xt, tdt=tdt: xt.to(tdt)
        out.append((f"cast fp32->{name}", 5 * n, row))
        codes = x.astype(dt)
        row = {"fastq": lambda c=codes, o=o32: fq.cast(c, "float32", out=o),
               "ml_dtypes": lambda c=codes: c.astype(np.float32)}
        out.append((f"cast {name}->fp32", 5 * n, row))
    if md is not None:
        o8 = np.empty(n, md.float8_e4m3fn)
        out.append(("cast fp32->float8_e4m3fn saturate", 5 * n, {
            "fastq": lambda: fq.cast(x, "float8_e4m3fn", saturate=True, out=o8),
            "onnx (clip+ml_dtypes)": lambda: np.clip(x, -448, 448).astype(md.float8_e4m3fn)}))
    m = x.reshape(-1, 4096) if n % 4096 == 0 else x.reshape(1, -1)
    out.append(("quantize float8_e4m3fn per-channel", 5 * n, {
        "fastq": lambda: fq.quantize(m, "float8_e4m3fn", granularity=fq.PerChannel(0))}))
    for name in ("mxfp8_e4m3", "mxfp8_e5m2", "mxint8"):  # (8-bit elements, E8M0 scales)
        out.append((f"quantize {name}", 5 * n + n // 32, {
            "fastq": lambda name=name: fq.quantize(m, name)}))
        qt8 = fq.quantize(m, name)
        out.append((f"dequantize {name}", 5 * n + n // 32, {
            "fastq": lambda qt8=qt8: fq.dequantize(qt8)}))
    try:
        import gguf
        from gguf import quants
    except ImportError:
        gguf = None
    mxfp4 = gguf.GGMLQuantizationType.MXFP4 if gguf else None
    row = {"fastq": lambda: fq.quantize(m, "mxfp4")}
    if gguf:
        row["gguf"] = lambda: quants.quantize(m, mxfp4)
    out.append(("quantize mxfp4", 4 * n + 17 * n // 32, row))
    qt4 = fq.quantize(m, "mxfp4")
    row = {"fastq": lambda: fq.dequantize(qt4)}
    if gguf:
        row["gguf"] = lambda: quants.dequantize(qt4.data.reshape(m.shape[0], -1), mxfp4)
    out.append(("dequantize mxfp4", 4 * n + 17 * n // 32, row))
    out.append(("quantize nvfp4", 4 * n + n // 2 + n // 16, {
        "fastq": lambda: fq.quantize(m, "nvfp4")}))
    qtnv = fq.quantize(m, "nvfp4")
    out.append(("dequantize nvfp4", 4 * n + n // 2 + n // 16, {
        "fastq": lambda: fq.dequantize(qtnv)}))
    row = {"fastq": lambda: fq.quantize(x, "nf4")}
    qtnf = fq.quantize(x, "nf4")
    row_dq = {"fastq": lambda: fq.dequantize(qtnf)}
    try:
        import bitsandbytes as bnb
        if torch is not None:
            xt = torch.from_numpy(x)
            row["bitsandbytes"] = lambda: bnb.functional.quantize_4bit(xt, quant_type="nf4",
                                                                       blocksize=64)
            q4, state = bnb.functional.quantize_4bit(xt, quant_type="nf4", blocksize=64)
            row_dq["bitsandbytes"] = lambda: bnb.functional.dequantize_4bit(q4, state)
    except ImportError:
        pass
    out.append(("quantize nf4", 4 * n + n // 2 + n // 16, row))
    out.append(("dequantize nf4", 4 * n + n // 2 + n // 16, row_dq))
    return out
