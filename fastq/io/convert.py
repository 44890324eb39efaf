"""Model files in, quantized model files out, one tensor in memory at a time.

``quantize_file`` is the work of ``fastq quantize`` for safetensors and GGUF files: each
tensor is read from the input (a copy of that tensor alone, so resident memory stays
near the largest tensor however big the file), quantized by ``quantize_model`` on a
one-tensor mapping, and its bytes streamed to the output; integer tensors (position
ids, masks) are carried through unchanged.  A safetensors output is streamed by
:class:`~fastq.io.safetensors_file.SafetensorsWriter`; a GGUF output, whose header
lists every tensor before the first byte of data, is first spilled to a temporary
safetensors file next to it, then copied tensor by tensor.  Either way the output
appears by ``os.replace`` at the end, or not at all.
"""
import os
import tempfile

import numpy as np

from .files import FileTensors, add_stored, stored_tensors
from .output import output_folder
from .safetensors_file import SafetensorsWriter

EXTENSIONS = {".safetensors": "safetensors", ".gguf": "gguf", ".onnx": "onnx"}


def file_kind(path, role="input"):
    """``"safetensors"``, ``"gguf"`` or ``"onnx"`` from the extension, or ValueError."""
    kind = EXTENSIONS.get(os.path.splitext(os.fspath(path))[1].lower())
    if kind is None:
        raise ValueError(f"{role} {os.fspath(path)!r}: not a .safetensors, .gguf or .onnx file")
    return kind


class InputTensors:
    """The tensors of a safetensors or GGUF file, by name, read one at a time."""

    def __init__(self, path):
        if not os.path.isfile(path):
            raise ValueError(f"input {os.fspath(path)!r}: no such file")
        self.kind = file_kind(path)
        if self.kind == "safetensors":
            self._file = FileTensors(path)
            self.names = list(self._file.names)
        elif self.kind == "gguf":
            from .gguf import read
            self._tensors = read(path)
            self.names = list(self._tensors)
        else:
            raise ValueError(f"input {os.fspath(path)!r}: ONNX models are quantized whole "
                             "(fastq quantize model.onnx -o out.onnx)")

    def get(self, name):
        """The tensor ``name`` in memory (a copy, not a view of the file)."""
        if self.kind == "safetensors":
            return self._file.get(name, copy=True)
        value = self._tensors[name]
        return value if not isinstance(value, np.ndarray) else np.array(value)


def quantize_file(source, target, recipe, quantize_model, *, include=None, exclude=None,
                  min_elements=1024, progress=None):
    """Quantize the model file ``source`` into ``target`` with ``quantize_model``.

    Parameters
    ----------
    source, target : str or os.PathLike
        ``.safetensors`` or ``.gguf`` (the output's type comes from its extension).
    recipe, include, exclude, min_elements
        Passed to ``quantize_model`` for each float tensor.
    quantize_model : callable
        ``fq.quantize_model``'s interface, returning an object with ``.tensors`` and
        ``.report().rows``.
    progress : callable, optional
        ``progress(done, total, name)`` after each tensor.

    Returns
    -------
    list of dict
        The report rows (name, scheme, shape, bytes_before, bytes_after,
        bits_per_element, sqnr_db), carried tensors included.
    """
    inputs = InputTensors(source)
    kind = file_kind(target, "output")
    if kind == "onnx":
        raise ValueError(f"output {os.fspath(target)!r}: ONNX output needs an ONNX input")
    output_folder(target)
    metadata = {"fastq.recipe": str(recipe)}
    rows = []
    spill_path = target if kind == "safetensors" else _spill_name(target)
    try:
        with SafetensorsWriter(spill_path, metadata) as writer:
            for done, name in enumerate(inputs.names, 1):
                value, row = _quantize_one(name, inputs.get(name), recipe, quantize_model,
                                           include, exclude, min_elements)
                add_stored(writer, *stored_tensors(name, value))
                rows.append(row)
                del value
                if progress is not None:
                    progress(done, len(inputs.names), name)
        if kind == "gguf":
            from .gguf import write
            write(target, FileTensors(spill_path), metadata)
    finally:
        if kind == "gguf" and os.path.exists(spill_path):
            os.unlink(spill_path)
    return rows


def _spill_name(target):
    fd, path = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(target)),
                                prefix=".fastq-spill-", suffix=".safetensors")
    os.close(fd)
    return path


def _quantize_one(name, x, recipe, quantize_model, include, exclude, min_elements):
    if isinstance(x, np.ndarray) and x.dtype.kind in "biu":
        return x, carried_row(name, x)
    model = quantize_model({name: x}, recipe=recipe, include=include, exclude=exclude,
                           min_elements=min_elements)
    rows = model.report().rows
    return model.tensors[name], (rows[0] if rows else carried_row(name, x))


def carried_row(name, x):
    """The report row of a tensor written as it came."""
    x = np.asarray(x)
    return {"name": name, "scheme": f"kept ({x.dtype})", "shape": tuple(x.shape),
            "bytes_before": int(x.nbytes), "bytes_after": int(x.nbytes),
            "bits_per_element": 8.0 * x.dtype.itemsize, "sqnr_db": None}


def totals(rows):
    """``{"bytes_before", "bytes_after", "ratio"}`` over report rows."""
    before = sum(r["bytes_before"] for r in rows)
    after = sum(r["bytes_after"] for r in rows)
    return {"bytes_before": before, "bytes_after": after,
            "ratio": before / after if after else float("inf")}
