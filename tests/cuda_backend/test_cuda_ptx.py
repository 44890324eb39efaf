"""The CUDA kernels compile for a real GPU (PTX through NVVM), not only in the simulator.

Runs ``tests/_ptx_check.py`` in a fresh process (the simulator must be off there); skips
where libnvvm/libnvrtc cannot be found (``pip install nvidia-cuda-nvcc nvidia-cuda-nvrtc``
or set ``CUDA_HOME`` to run it without a GPU).
"""
import os
import subprocess
import sys

import pytest


def test_every_cuda_kernel_compiles_to_exact_ptx():
    # numba's own numba.cuda (deprecated in favour of the numba-cuda package, the
    # fastq[cuda] extra) mis-types a kernel's calls of cached device functions under
    # compile_ptx ("Signature mismatch: 2 argument types given, but function takes 1"),
    # whatever the signatures: the check needs the package the CUDA backend is built on.
    pytest.importorskip("numba_cuda", reason="the PTX check needs numba-cuda (fastq[cuda])")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    script = os.path.join(os.path.dirname(__file__), "..", "_ptx_check.py")
    run = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True,
                         timeout=600)
    if run.returncode == 77:
        pytest.skip(run.stdout.strip() or "no NVVM here")
    assert run.returncode == 0, run.stdout + run.stderr
