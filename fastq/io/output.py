"""Output files appear whole or not at all."""
import contextlib
import os
import tempfile


def output_folder(path):
    """The absolute ``path`` after checking that its directory exists (ValueError)."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(os.path.dirname(path)):
        raise ValueError(f"output directory {os.path.dirname(path)} does not exist")
    return path


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path in ``path``'s directory; on success it replaces ``path``
    (``os.replace``, atomic on one file system), on any exception it is deleted, so an
    interrupted write never leaves a partial file under the output's name."""
    path = output_folder(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".fastq-", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would outlive the rename
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
