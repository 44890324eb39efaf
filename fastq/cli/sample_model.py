"""``fastq sample-model``: write the built-in sample model (a small Llama-shaped
checkpoint, the same bytes everywhere) to try the other commands on."""


def register(commands):
    p = commands.add_parser("sample-model", help="write a small deterministic sample model")
    p.add_argument("-o", "--output", required=True, help="output .safetensors or .gguf file")
    p.set_defaults(run=run)


def run(args):
    from ..io.convert import file_kind
    from ..io.sample import sample_model
    kind = file_kind(args.output, "output")
    model = sample_model()
    if kind == "safetensors":
        from ..io import save
        save(args.output, model, metadata={"fastq.sample_model": "1"})
    elif kind == "gguf":
        from ..io import gguf
        gguf.write(args.output, model)
    else:
        raise ValueError(f"output {args.output!r}: the sample model is a .safetensors or "
                         ".gguf file")
    total = sum(a.nbytes for a in model.values())
    print(f"wrote {args.output}: {len(model)} tensors, {total / 2**20:.1f} MB")
    return 0
