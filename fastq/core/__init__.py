"""Layer 1, pure definitions: float formats, integer code ranges, granularities, argument
checks (one wording per error), kernel flags and layout constants.  Imports nothing of
fastq's and compiles nothing."""
