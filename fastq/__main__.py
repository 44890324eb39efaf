"""``python -m fastq``: the same as the ``fastq`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
