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
import math
import os
import tempfile

import numpy as np

from ..core.codes import INT_DTYPES
from ..core.granularity import PerBlock, PerChannel, PerGroup, PerTensor
from ..ops import QTensor, metrics
from ..ops.blocks import FORMATS
from .files import FileTensors, add_stored, stored_tensors
from .output import output_folder
from .safetensors_file import SafetensorsWriter

EXTENSIONS = {".safetensors": "safetensors", ".gguf": "gguf", ".onnx": "onnx"}
# A tensor larger than this has its SQNR computed by slices of rows of about this size
# (its dequantization is never whole in memory: peak stays near the tensor plus codes)
CHUNK_BYTES = 16 << 20


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
    value = model.tensors[name]
    scheme = model.schemes.get(name)
    sqnr = streamed_sqnr(x, value) if scheme is not None else None
    if sqnr is None:  # (a small tensor, or a layout not sliced by rows here)
        rows = model.report().rows
        return value, (rows[0] if rows else carried_row(name, x))
    nbytes = value.nbytes
    return value, {"name": name, "scheme": scheme, "shape": tuple(x.shape),
                   "bytes_before": int(x.nbytes), "bytes_after": int(nbytes),
                   "bits_per_element": 8 * nbytes / x.size, "sqnr_db": sqnr}


def streamed_sqnr(x, value):
    """``10 log10(sum x**2 / sum (x - x_hat)**2)`` over slices of ``CHUNK_BYTES`` of
    rows, so that the dequantized tensor is never whole in memory (the report's SQNR,
    computed by parts); None for small tensors and layouts not cut by rows here."""
    if x.ndim < 2 or x.nbytes <= CHUNK_BYTES or not x.size:
        return None
    step = _rows_step(value, x.shape)
    if step is None:
        return None
    rows = max(step, CHUNK_BYTES // (x.nbytes // x.shape[0]) // step * step)
    signal = noise = 0.0
    for r0 in range(0, x.shape[0], rows):
        r1 = min(r0 + rows, x.shape[0])
        part = np.asarray(x[r0:r1], np.float32)
        x_hat = _row_slice(value, x.shape, r0, r1)
        m = metrics(part, x_hat)
        noise += m.mse * part.size
        signal += float(np.einsum("i,i->", part.reshape(-1), part.reshape(-1), dtype=np.float64))
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


def _rows_step(value, shape):
    """Rows per slice that keep every slice on whole blocks and whole bytes, or None."""
    if isinstance(value, np.ndarray):
        return 1
    if value.granularity is None:  # a GGML format: rows of blocks
        ok = value.dtype in FORMATS and np.asarray(value.data).shape[:-1] == tuple(shape[:-1])
        return 1 if ok else None
    g = value.granularity
    if value.dtype not in INT_DTYPES or not isinstance(g, (PerTensor, PerChannel, PerGroup,
                                                            PerBlock)):
        return None
    whole = isinstance(g, PerTensor) or (isinstance(g, PerChannel) and g.axis % len(shape))
    # slices of whole scale blocks along the rows (a scale for all rows: any), of a
    # multiple of 8 rows, so that packed 4- and 2-bit codes split at whole bytes
    return 8 if whole else 8 * g.blocks(shape)[0]


def _row_slice(value, shape, r0, r1):
    """float32 dequantization of rows ``r0:r1`` of ``value``."""
    if isinstance(value, np.ndarray):
        return np.asarray(value[r0:r1], np.float32)
    sub_shape = (r1 - r0,) + tuple(shape[1:])
    if value.granularity is None:
        return QTensor(value.data[r0:r1], value.dtype, None, None, sub_shape, None).dequantize()
    codes, g = INT_DTYPES[value.dtype], value.granularity
    row = math.prod(shape[1:])
    if codes.packed:
        data = value.data.reshape(-1)[r0 * row * codes.bits // 8:
                                      -(-r1 * row * codes.bits // 8)]
    else:
        data = value.data.reshape(shape)[r0:r1]
    params = g.param_shape(shape)
    if isinstance(g, PerTensor) or (isinstance(g, PerChannel) and g.axis % len(shape)):
        scale, zp = value.scale, value.zero_point
    else:
        b0 = g.blocks(shape)[0]
        cut = slice(r0 // b0, -(-r1 // b0))
        scale = value.scale[cut] if len(params) else value.scale
        zp = None if value.zero_point is None else value.zero_point[cut]
    return QTensor(data, value.dtype, scale, zp, sub_shape, g).dequantize()


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
