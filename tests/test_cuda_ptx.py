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
    pytest.importorskip("numba.cuda")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    script = os.path.join(os.path.dirname(__file__), "_ptx_check.py")
    run = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True,
                         timeout=600)
    if run.returncode == 77:
        pytest.skip(run.stdout.strip() or "no NVVM here")
    assert run.returncode == 0, run.stdout + run.stderr
