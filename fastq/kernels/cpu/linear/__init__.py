"""Linear quantization kernels over the blocked ``(P, K, Q)`` view that every granularity
maps onto: ranges, parameters, codes, and the row and whole-tensor fast paths."""
