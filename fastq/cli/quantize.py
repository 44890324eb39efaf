"""``fastq quantize IN -o OUT --recipe R``: a model file quantized into another.

safetensors or GGUF in, safetensors or GGUF out (by extension), streamed one tensor at
a time through ``fq.quantize_model``; an ONNX model in gives an ONNX model out, its
MatMul/Gemm/Conv weights as integer initializers behind DequantizeLinear nodes.
"""

from .console import Progress, format_table, human_bytes

COLUMNS = ("name", "scheme", "shape", "bytes_before", "bytes_after", "bits_per_element",
           "sqnr_db")


def register(commands):
    p = commands.add_parser("quantize", help="quantize a model file (safetensors, GGUF, ONNX)")
    p.add_argument("input", help="a .safetensors, .gguf or .onnx model")
    p.add_argument("-o", "--output", required=True, help="output file; its type from its extension")
    p.add_argument("--recipe", default="dynamic_range",
                   help="dynamic_range (default), int4_weight_only, float16, q4_0, ...")
    p.add_argument("--include", action="append", help="quantize only names matching (repeatable)")
    p.add_argument("--exclude", action="append", help="leave names matching as they are")
    p.add_argument("--min-elements", type=int, default=1024,
                   help="tensors smaller than this stay as they are (default 1024)")
    p.set_defaults(run=run)


def quantize_model():
    """``fq.quantize_model`` (looked up here, so tests can stand another in)."""
    from ..calibration import quantize_model as model_quantizer
    return model_quantizer


def run(args):
    from ..io.convert import file_kind, quantize_file
    if file_kind(args.input) == "onnx":
        from ..io.onnx_weights import quantize_onnx_file
        rows = quantize_onnx_file(args.input, args.output, args.recipe,
                                  include=args.include, exclude=args.exclude,
                                  min_elements=args.min_elements)
    else:
        progress = Progress(f"quantize {args.recipe}")
        try:
            rows = quantize_file(args.input, args.output, args.recipe, quantize_model(),
                                 include=args.include, exclude=args.exclude,
                                 min_elements=args.min_elements, progress=progress)
        finally:
            progress.close()
    print(report(rows, args))
    return 0


def report(rows, args):
    """The summary: one line per tensor, then the sizes and their ratio."""
    from ..io.convert import totals
    t = totals(rows)
    table = format_table(COLUMNS, [[r.get(c) for c in COLUMNS] for r in rows])
    return (f"{table}\n\n{args.input} -> {args.output} (recipe {args.recipe}): "
            f"{human_bytes(t['bytes_before'])} -> {human_bytes(t['bytes_after'])}, "
            f"ratio {t['ratio']:.2f}x")
