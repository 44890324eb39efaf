"""Shared test setup.

Without a real GPU, Numba's CUDA simulator runs the "cuda" backend tests; it must be
switched on before numba is imported, hence here, at the top of the first conftest.
"""
import os
import shutil
import tempfile

if "NUMBA_ENABLE_CUDASIM" not in os.environ and not os.path.exists("/dev/nvidia0"):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

# Numba's on-disk cache is not safe for processes that compile into it at once: two
# writers can each number a new overload the same, and the index of one then names the
# other's machine code (a crash or wrong results in a later process).  Under
# pytest-xdist (-n) each worker therefore compiles into a cache of its own, in a
# directory the controlling process makes for this run and removes at its end.
_OWN_CACHES = False
if "PYTEST_XDIST_WORKER" not in os.environ and "FASTQ_TEST_CACHES" not in os.environ:
    os.environ["FASTQ_TEST_CACHES"] = tempfile.mkdtemp(prefix="fastq-test-caches-")
    _OWN_CACHES = True
if "PYTEST_XDIST_WORKER" in os.environ and "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(os.environ["FASTQ_TEST_CACHES"],
                                                 os.environ["PYTEST_XDIST_WORKER"])

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SIMULATED_GPU = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

try:  # property tests: the same examples on every run (CI) unless asked to explore
    from hypothesis import HealthCheck, settings
except ImportError:
    pass
else:
    _QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile("repeatable", derandomize=True, max_examples=60,
                              deadline=None, suppress_health_check=_QUIET)
    settings.register_profile("explore", max_examples=3000, deadline=None,
                              suppress_health_check=_QUIET)  # HYPOTHESIS_PROFILE=explore
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def _cuda_usable():
    try:
        from numba import cuda
    except ImportError:
        return False
    try:
        return cuda.is_available()
    except Exception:
        return False


@pytest.fixture(params=["cpu", "cuda"])
def backend(request):
    """Run a test once per backend; "cuda" skips cleanly where it cannot run."""
    if request.param == "cuda" and not _cuda_usable():
        pytest.skip("no CUDA (numba-cuda missing and no simulator)")
    return request.param


@pytest.fixture
def cuda():
    """numba.cuda (real or simulated); skips where the CUDA backend cannot run."""
    if not _cuda_usable():
        pytest.skip("no CUDA (numba-cuda missing and no simulator)")
    from numba import cuda
    return cuda


@pytest.fixture(scope="session")
def fq():
    """The package, for tests that take it as a fixture."""
    import fastq
    return fastq


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_unconfigure(config):
    if _OWN_CACHES:  # (the controlling process, once its workers are done)
        shutil.rmtree(os.environ.pop("FASTQ_TEST_CACHES"), ignore_errors=True)
