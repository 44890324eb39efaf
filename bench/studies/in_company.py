"""Each library's per-call time alone and in company: the same operation by fastq, torch
and ONNX Runtime on the same float32 data, first each library's calls back to back
(alone), then the three libraries' calls alternating one by one (in company, as in a
process that uses them together).  The ratio company / alone shows what the other
thread pools cost each library; ONNX Runtime's sessions keep their default (worker
threads spin after a run).

    python bench/studies/in_company.py [OP=cast|static] [N=25] [SIZES=262144 1048576 16777216]

Prints, per size, each library's median alone, in company and the ratio.  A library
whose parallel region waits at its end for a worker thread that the scheduler has not
run yet (the cores taken by the other pools' spinning threads) shows ratios of 10-300
at the small sizes; see docs/design.md ("In company with other thread pools").
"""
import sys
import time
import warnings

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

import fastq as fq

warnings.filterwarnings("ignore")
torch.set_num_threads(2)
OP = sys.argv[1] if len(sys.argv) > 1 else "cast"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 25
SIZES = [int(s) for s in sys.argv[3:]] or [1 << 18, 1 << 20, 1 << 24]
SCALE, ZERO = np.float32(0.02), np.int8(3)


def session(n):
    if OP == "cast":
        node = helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT16)
        out, inits = TensorProto.FLOAT16, []
    else:
        node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
        out = TensorProto.INT8
        inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [float(SCALE)]),
                 helper.make_tensor("z", TensorProto.INT8, [], [int(ZERO)])]
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
                              [helper.make_tensor_value_info("y", out, [n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def libraries(n):
    x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    t, s = torch.from_numpy(x), session(n)
    if OP == "cast":
        return {"fastq": lambda: fq.cast(x, "float16"), "torch": lambda: t.to(torch.float16),
                "onnxruntime": lambda: s.run(None, {"x": x})}
    return {"fastq": lambda: fq.quantize(x, "int8", scale=SCALE, zero_point=ZERO),
            "torch": lambda: torch.quantize_per_tensor(t, float(SCALE), int(ZERO), torch.qint8),
            "onnxruntime": lambda: s.run(None, {"x": x})}


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


print(f"{OP}: median us per call; torch {torch.__version__}, onnxruntime {ort.__version__}")
print(f"{'elements':>9} {'library':<12} {'alone':>9} {'company':>9} {'ratio':>6}")
for n in SIZES:
    libs = libraries(n)
    calls = max(N, N * (1 << 22) // n) if n < 1 << 22 else N
    for fn in libs.values():
        fn(), fn()
    alone = {}
    for name, fn in libs.items():
        time.sleep(0.1)  # (the previous library's threads stop spinning)
        alone[name] = np.median([timed(fn) for _ in range(calls)])
    company = {name: [] for name in libs}
    for _ in range(calls):
        for name, fn in libs.items():
            company[name].append(timed(fn))
    for name in libs:
        c = np.median(company[name])
        print(f"{n:>9} {name:<12} {alone[name] * 1e6:9.0f} {c * 1e6:9.0f} {c / alone[name]:6.2f}")
