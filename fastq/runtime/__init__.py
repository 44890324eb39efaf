"""Layer 2, process state: thread counts, the floating-point environment, host and device
memory, and the on-disk kernel cache."""
