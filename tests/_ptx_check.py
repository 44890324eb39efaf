"""Compile every fastq CUDA kernel to PTX (sm_90) without a GPU (run by test_cuda_ptx.py).

The CUDA simulator runs the kernels' Python; this compiles them for real, through NVVM,
which catches typing and lowering errors the simulator cannot, and checks the PTX for
the properties the bit-exactness relies on: IEEE division (``div.rn.f32``) and no fused
multiply-adds.  Needs libnvvm and libnvrtc (``pip install nvidia-cuda-nvcc
nvidia-cuda-nvrtc``, or a CUDA toolkit via ``CUDA_HOME``), not a GPU or a driver: it
stands in for the device lookups the compiler makes.  Exits 77 when NVVM is missing.
"""
import os
import re
import sys
import traceback
os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
from numba import cuda, types
import numba.cuda.dispatcher as D
import numba.cuda.api as A
class FakeDev:
    compute_capability = (9, 0)
    id = 0
D.get_current_device = lambda: FakeDev()
A.get_current_device = lambda: FakeDev()
from fastq.kernels.cuda import cast as C, quant as Q, pack as PK, metrics as M
from fastq.kernels.cuda.blocks import ggml as G, kquants as K, microscale as MS, nf4 as N
u8, u16, u32, u64 = types.uint8, types.uint16, types.uint32, types.uint64
i8, i16, i32, i64 = types.int8, types.int16, types.int32, types.int64
f16, f32, f64, b1 = types.float16, types.float32, types.float64, types.boolean
A1 = lambda t: t[::1]
A2 = lambda t: t[:, ::1]
A3 = lambda t: t[:, :, ::1]
jobs = [
    (C._encode_kernel, (A1(u32), A1(f32), A1(u16), A1(u32), f32, f32, b1)),
    (C._encode_kernel, (A1(u64), A1(f64), A1(u16), A1(u64), f64, f64, b1)),
    (C._encode_kernel, (A1(u64), A1(f64), A1(u32), A1(u64), f64, f64, b1)),
    (C._encode_stochastic_kernel, (A1(u32), A1(u16), A1(u32), u64, u64, u64)),
    (C._encode_stochastic_kernel, (A1(u64), A1(u16), A1(u64), u64, u64, u64)),
    (C._decode_kernel, (A1(u16), A1(u32), A1(f32), A1(u32), f64)),
    (C._decode_kernel, (A1(u16), A1(u64), A1(f64), A1(u64), f64)),
    (C._widen_kernel, (A1(u32), A1(u64), A1(f64))),
    (C._copy_kernel, (A1(u16), A1(u16))),
    (Q._key_kernel, (A3(u32), i64, i64, i64, u64, u64, i64, A1(u32), A1(u32))),
    (Q._quantize_kernel, (A3(f32), i64, i64, i64, A1(f32), A1(f32), f32, f32, f32, b1, A3(i8), A1(i32))),
    (Q._quantize_kernel, (A3(f32), i64, i64, i64, A1(f32), A1(f32), f32, f32, f32, b1, A3(f32), A1(i32))),
    (Q._quantize_kernel, (A3(f32), i64, i64, i64, A1(f32), A1(f32), f32, f32, f32, b1, A3(u16), A1(i32))),
    (Q._dequantize_kernel, (A3(i8), i64, i64, i64, A1(f32), A1(f32), A3(f32))),
    (Q._dequantize_kernel, (A3(u16), i64, i64, i64, A1(f32), A1(f32), A3(f32))),
    (PK._pack_kernel, (A1(u8), i64, A1(u8))),
    (PK._unpack_kernel, (A1(u8), i64, u64, A1(u8))),
    (PK._narrow_kernel, (A1(i16), i64, i64, A1(i8), A1(i32))),
    (PK._narrow_kernel, (A1(u64), i64, i64, A1(u8), A1(i32))),
    (M._lanes_kernel, (A1(f32), A1(f32), i64, A3(f64), A2(u64))),
    (M._lanes_kernel, (A1(f16), A1(f64), i64, A3(f64), A2(u64))),
    (M._lanes_kernel, (A1(i32), A1(f64), i64, A3(f64), A2(u64))),
    (G._quantize_kernel, (A1(f32), i64, A1(u8), A1(i64))),
    (G._dequantize_kernel, (A1(u8), i64, A1(f32))),
    (G._codes_kernel, (A1(u8), i64, A1(u8))),
    (K._search_kernel, (A1(f32), i64, A1(f32), A1(f32), A1(u8))),
    (K._finish_kernel, (A1(f32), i64, A1(f32), A1(f32), A1(u8), A1(u8), A1(i64))),
    (K._dequantize_kernel, (A1(u8), i64, A1(f32))),
    (K._codes_kernel, (A1(u8), i64, A1(u8))),
    (N._absmax_kernel, (A1(f32), i64, A1(f32))),
    (N._encode_kernel, (A1(f32), i64, A1(f32), A1(f32), A1(u8))),
    (N._decode_kernel, (A1(u8), i64, A1(f32), A1(f32), A1(f32))),
    (MS._amax_kernel, (A2(u32), A1(u32))),
    (MS._mx_kernel, (A2(f32), i64, i64, A1(u32), f32, f32, A2(u8), A1(u8))),
    (MS._encode_kernel, (A2(f32), A1(f32), A1(u32), f32, f32, A2(u8))),
    (MS._ggml_mxfp4_kernel, (A2(u8), A1(u8), A2(u8))),
    (MS._decode_rows_kernel, (A1(u8), A1(f32), A1(f32), i64, A1(f32))),
    (MS._decode_mxfp4_kernel, (A1(u8), A1(f32), A1(f32), A1(f32))),
]
try:
    cuda.compile_ptx(C._copy_kernel.py_func, (A1(u16), A1(u16)), cc=(9, 0))
except Exception as exc:  # no libnvvm / libnvrtc here
    print(f"SKIP: cannot compile PTX here: {str(exc).splitlines()[0][:200]}")
    sys.exit(77)
bad = 0
for kernel, sig in jobs:
    try:
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
        fused = re.findall(r"\bfma\.[\w.]+", ptx)
        approx = [d for d in re.findall(r"\bdiv\.[\w.]+", ptx) if ".f" in d and ".rn" not in d]
        if fused or approx:
            bad += 1
            print(f"FAIL {kernel.py_func.__name__}: fused {fused[:3]} approximate {approx[:3]}")
        else:
            print(f"ok   {kernel.py_func.__name__:28s} {len(ptx):7d} chars of PTX")
    except Exception as e:
        bad += 1
        print(f"FAIL {kernel.py_func.__name__}: {str(e).splitlines()[0][:300]}")
        tb = [l for l in traceback.format_exc().splitlines() if "fastq" in l]
        print("\n".join(tb[-3:]))
sys.exit(1 if bad else 0)
