"""The ``fastq`` command line."""
import argparse
import sys


def _bench(args):
    from .bench import SWEEP, format_sweep, format_table, run, sweep
    repeat = args.repeat or (5 if args.quick else 15)
    if args.sizes:
        sizes = [args.size] if args.size else [s for s in SWEEP if s <= 1 << 20 or not args.quick]
        rows = sweep(sizes, repeat=max(repeat, 25), only=args.only)
        if not rows:
            raise ValueError(f"no benchmark matches --only {args.only!r}")
        print("fastq bench --sizes: median per call, calls interleaved in one process")
        print(format_sweep(rows, markdown=args.markdown))
        return 0
    size = args.size or (1 << 20 if args.quick else 1 << 24)
    if sys.stdout.isatty():  # the first run compiles the kernels: say why it waits
        print("fastq bench: running (kernels compile on first use, then load from the "
              "disk cache)...", file=sys.stderr, flush=True)
    rows = run(size=size, repeat=repeat, only=args.only)
    if not rows:
        raise ValueError(f"no benchmark matches --only {args.only!r}")
    print(f"fastq bench: {size} float32 elements, median of {repeat}")
    print(format_table(rows, markdown=args.markdown))
    return 0


def _warmup(args):
    from .warmup import warmup
    seconds = warmup(args.families, everything=args.all)
    print(f"fastq warmup: {sum(seconds.values()):.1f} s in all; kernels cached on disk")
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
    b.add_argument("--quick", action="store_true", help="1M elements, 5 repeats")
    b.add_argument("--size", type=_positive, help="elements (multiple of 4096 for matrices)")
    b.add_argument("--repeat", type=_positive)
    b.add_argument("--only", help="run the operations whose name contains this")
    b.add_argument("--markdown", action="store_true")
    b.add_argument("--sizes", action="store_true",
                   help="sweep 4K to 16M elements (1M with --quick), calls interleaved")
    b.set_defaults(run=_bench)
    w = sub.add_parser("warmup", help="compile the kernels into the on-disk cache ahead of time")
    w.add_argument("families", nargs="*", metavar="FAMILY",
                   help="cast, quantize, pack, metrics (default: all four)")
    w.add_argument("--all", action="store_true",
                   help="every input dtype, code dtype, granularity and rounding")
    w.set_defaults(run=_warmup)
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
