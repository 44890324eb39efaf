"""The flags kernels return: one bit per condition met, ORed across chunks and passes."""

NAN = 1  # a NaN was met
INF = 2  # an infinity was met (in a range pass)
BAD_SCALE = 4  # a given scale was not finite and > 0 (nothing written)
