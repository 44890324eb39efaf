"""The ``fastq`` command line."""
import argparse
import sys


def _bench(args):
    from .bench import format_table, run
    size = args.size or (1 << 20 if args.quick else 1 << 24)
    repeat = args.repeat or (3 if args.quick else 15)
    if sys.stdout.isatty():  # the first run compiles the kernels: say why it waits
        print("fastq bench: running (kernels compile on first use, then load from the "
              "disk cache)...", file=sys.stderr, flush=True)
    rows = run(size=size, repeat=repeat, only=args.only)
    if not rows:
        raise ValueError(f"no benchmark matches --only {args.only!r}")
    print(f"fastq bench: {size} float32 elements, best of {repeat}")
    print(format_table(rows, markdown=args.markdown))
    return 0


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parser():
    p = argparse.ArgumentParser(prog="fastq", description="fastq: quantization kernels")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="fastq against the installed peers, side by side")
    b.add_argument("--quick", action="store_true", help="1M elements, 3 repeats")
    b.add_argument("--size", type=_positive, help="elements (multiple of 4096 for matrices)")
    b.add_argument("--repeat", type=_positive)
    b.add_argument("--only", help="run the operations whose name contains this")
    b.add_argument("--markdown", action="store_true")
    b.set_defaults(run=_bench)
    from . import inspect, quantize, sample_model
    for command in (sample_model, quantize, inspect):
        command.register(sub)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        print(f"fastq {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
