"""Drop kernel cache files that may hold stale machine code.

Numba keys a cached kernel by the timestamp of its own source file only, but kernels
inline code from the modules they import (``kernels/cpu/word.py``, the row kernels,
the intrinsics of ``runtime/fpenv.py`` and the layout constants of ``core/``): after an edit of those alone, the cache would hand back the
old machine code.  Before the first kernel module loads, cache files older than the
newest kernel source are removed (in-tree caches: a checkout or an editable install;
an install rewrites every file, so its caches start fresh anyway).  Stats only, no
compiling: cheap enough to run at every start-up.
"""
import os

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# what kernels compile from: their own modules, the intrinsics of the process state
# they change, and the pure definitions
_KERNEL_SOURCES = ("kernels", "core", os.path.join("runtime", "fpenv.py"),
                   os.path.join("runtime", "threads.py"))
_done = False


def drop_stale():
    """Remove stale cache files, once per process (later calls return at once)."""
    global _done
    if _done:
        return
    _done = True
    try:
        sources, caches = [], []
        for name in _KERNEL_SOURCES:
            path = os.path.join(_PACKAGE, name)
            if not os.path.isdir(path):
                sources.append(path)
                continue
            for folder, dirs, files in os.walk(path):
                sources += [os.path.join(folder, f) for f in files if f.endswith(".py")]
                if "__pycache__" in dirs:
                    caches.append(os.path.join(folder, "__pycache__"))
        caches.append(os.path.join(_PACKAGE, "runtime", "__pycache__"))
        newest = max(os.stat(p).st_mtime_ns for p in sources)
        for cache in caches:
            if not os.path.isdir(cache):
                continue
            for f in os.listdir(cache):
                path = os.path.join(cache, f)
                if f.endswith((".nbi", ".nbc")) and os.stat(path).st_mtime_ns < newest:
                    os.remove(path)
    except OSError:  # (read-only tree, a file gone meanwhile: leave it to Numba)
        pass
