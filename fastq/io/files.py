"""``fq.save`` / ``fq.load``: quantized and plain tensors in a safetensors file.

A :class:`fastq.QTensor` named ``w`` is stored as plain tensors ``w.__q_data``,
``w.__q_scale`` and, when present, ``w.__q_zero_point`` and ``w.__q_tensor_scale``,
plus one ``__metadata__`` entry ``fastq.qtensor.w``: a JSON string with its dtype,
shape, granularity and the stored tensors' names and dtypes.  Arrays of a dtype that
safetensors has no code for (float4_e2m1fn codes, for instance) are stored as their
raw bytes (``U8``, one more trailing dimension of the item size) and their dtype is
named in the metadata (``fastq.dtype.<stored name>``).  docs/file-format.md has the
full layout.
"""
import json
import math

import numpy as np

from ..core import checks
from ..core.codes import INT_DTYPES
from ..core.granularity import PerBlock, PerChannel, PerGroup, PerTensor
from ..ops import QTensor
from ..ops.blocks import FORMATS
from .safetensors_file import SafetensorsFile, SafetensorsWriter, code_of, numpy_dtype

FORMAT_VERSION = "1"
QTENSOR_KEY = "fastq.qtensor."
DTYPE_KEY = "fastq.dtype."
PARTS = ("data", "scale", "zero_point", "tensor_scale")
_GRANULARITIES = {g.__name__: g for g in (PerTensor, PerChannel, PerGroup, PerBlock)}


def save(path, tensors, metadata=None):
    """Write ``tensors`` (name -> :class:`fastq.QTensor` or array) to a safetensors file.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its directory must exist.  Written to a temporary file in that
        directory and renamed, so the file appears whole or not at all.
    tensors : mapping of str to QTensor or array-like
        Plain arrays keep their dtype (float, bfloat16, float8, integer, bool).
    metadata : mapping of str to str, optional
        Extra ``__metadata__`` entries (``fastq quantize`` records ``fastq.recipe``).

    Raises
    ------
    TypeError
        ``tensors`` is not a mapping, or a value is neither a QTensor nor numeric.
    ValueError
        A name collides with a stored part name, or the directory is missing.
    """
    if not hasattr(tensors, "items"):
        raise TypeError(f"tensors must be a mapping of names to arrays, got {type(tensors).__name__}")
    stored = [stored_tensors(name, value) for name, value in tensors.items()]
    names = [n for parts, _ in stored for n, _ in parts]
    if len(set(names)) != len(names):
        raise ValueError("tensor names collide with the stored parts of a QTensor "
                         "(names ending in .__q_data etc.)")
    with SafetensorsWriter(path, _metadata(metadata)) as writer:
        for parts, meta in stored:
            add_stored(writer, parts, meta)


def stored_tensors(name, value):
    """``([(stored name, array)], {metadata key: JSON})`` for one named tensor."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"tensor names must be non-empty strings, got {name!r}")
    if not isinstance(value, QTensor):
        return [(name, checks.as_array(value, f"tensors[{name!r}]"))], {}
    entry = {"dtype": value.dtype, "shape": list(value.shape),
             "granularity": _granularity_json(name, value.granularity), "parts": {}}
    parts = []
    for part in PARTS:
        array = getattr(value, part)
        if array is None:
            continue
        array = np.asarray(array)
        stored_name = f"{name}.__q_{part}"
        entry["parts"][part] = {"tensor": stored_name, "dtype": array.dtype.name}
        parts.append((stored_name, array))
    return parts, {QTENSOR_KEY + name: json.dumps(entry)}


def add_stored(writer, parts, meta):
    """Add what :func:`stored_tensors` made to a :class:`SafetensorsWriter`."""
    for stored_name, array in parts:
        if code_of(array.dtype) is None:  # raw bytes, dtype in the metadata
            writer.metadata[DTYPE_KEY + stored_name] = array.dtype.name
            raw = np.require(array, requirements="C").reshape(-1).view(np.uint8)
            array = raw.reshape(array.shape + (array.dtype.itemsize,))
        writer.add(stored_name, array)
    writer.metadata.update(meta)


def _metadata(metadata):
    out = {"fastq.format": FORMAT_VERSION}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("metadata must map strings to strings")
        out[key] = value
    return out


def _granularity_json(name, granularity):
    if granularity is None or granularity == "tensor":
        return None
    kind = type(granularity).__name__
    if _GRANULARITIES.get(kind) is not type(granularity):
        raise ValueError(f"tensor {name!r}: cannot store granularity {granularity!r}")
    return {"type": kind, **{k: list(v) if isinstance(v, tuple) else v
                             for k, v in vars(granularity).items()}}


def load(path):
    """Read a safetensors file: name -> :class:`fastq.QTensor` or ndarray.

    The file is memory-mapped, not read: arrays are read-only views of it (a plain
    checkpoint's float32/float16/bfloat16/float8 and integer tensors come back as NumPy
    and ml_dtypes arrays).  The header is checked before anything is mapped (see
    :mod:`fastq.io.safetensors_file`); QTensor entries are checked against their
    dtype, shape and granularity.

    Raises
    ------
    ValueError
        The file is not a well-formed safetensors file, or its fastq metadata lies.
    OSError
        The file cannot be read.
    """
    return dict(FileTensors(path).items())


class FileTensors:
    """A safetensors file's tensors, QTensors reassembled, each read on demand.

    ``names`` lists the logical tensors (a QTensor once, not its parts) in file order;
    ``get(name, copy=False)`` maps it (``copy=True`` reads it into memory instead, so
    that a stream over a large file keeps one tensor resident).
    """

    def __init__(self, path):
        self.file = SafetensorsFile(path)
        self.metadata = {k: v for k, v in self.file.metadata.items()
                         if not k.startswith((QTENSOR_KEY, DTYPE_KEY))}
        self.qtensors, owner = {}, {}
        for key, text in self.file.metadata.items():
            if key.startswith(QTENSOR_KEY):
                name = key[len(QTENSOR_KEY):]
                self.qtensors[name] = _checked_entry(name, text, self.file, path)
                for part in self.qtensors[name]["parts"].values():
                    owner.setdefault(part["tensor"], name)
        self.names = []  # header order (the order saved), a QTensor where its parts are
        for stored in self.file.entries:
            name = owner.get(stored, stored)
            if name not in self.names or name not in self.qtensors:
                self.names.append(name)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"{path}: a tensor name is also a quantized tensor's name")
        self._dtypes = {}
        for stored in self.file.entries:
            dtype_name = self.file.metadata.get(DTYPE_KEY + stored)
            if dtype_name is not None:
                self._dtypes[stored] = _raw_dtype(stored, dtype_name, self.file, path)

    def get(self, name, copy=False):
        if name in self.qtensors:
            entry = self.qtensors[name]
            arrays = {part: self._stored(info["tensor"], copy)
                      for part, info in entry["parts"].items()}
            qt = QTensor(arrays["data"], entry["dtype"], arrays.get("scale"),
                         arrays.get("zero_point"), entry["shape"], entry["granularity"],
                         arrays.get("tensor_scale"))
            _check_qtensor(name, qt)
            return qt
        return self._stored(name, copy)

    def items(self):
        for name in self.names:
            yield name, self.get(name)

    def _stored(self, stored, copy):
        a = self.file.read(stored) if copy else self.file.view(stored)
        dtype = self._dtypes.get(stored)
        return a if dtype is None else a.view(dtype).reshape(a.shape[:-1])


def _raw_dtype(stored, dtype_name, file, path):
    e = file.entries[stored]
    try:
        dtype = numpy_dtype(dtype_name)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: tensor {stored!r}: unknown dtype {dtype_name!r}") from None
    if e.dtype != np.uint8 or not e.shape or e.shape[-1] != dtype.itemsize:
        raise ValueError(f"{path}: tensor {stored!r}: bytes do not hold {dtype_name}")
    return dtype


def _checked_entry(name, text, file, path):
    def bad(why):
        return ValueError(f"{path}: quantized tensor {name!r}: {why}")
    try:
        entry = json.loads(text)
    except ValueError:
        raise bad("metadata is not JSON") from None
    if not isinstance(entry, dict) or not {"dtype", "shape", "granularity", "parts"} <= set(entry):
        raise bad("metadata must hold dtype, shape, granularity and parts")
    if entry["dtype"] not in INT_DTYPES and entry["dtype"] not in FORMATS:
        raise bad(f"unknown dtype {entry['dtype']!r}")
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise bad(f"shape must be a list of non-negative integers, got {shape!r}")
    parts = entry["parts"]
    if not isinstance(parts, dict) or "data" not in parts or not set(parts) <= set(PARTS) \
            or not all(isinstance(p, dict) and p.get("tensor") in file.entries
                       for p in parts.values()):
        raise bad("parts must name stored tensors, data at least")
    entry["granularity"] = _granularity(entry["granularity"], bad)
    return entry


def _granularity(spec, bad):
    if spec is None:  # a block format's (its blocks are in its dtype)
        return None
    if not isinstance(spec, dict) or spec.get("type") not in _GRANULARITIES:
        raise bad(f"unknown granularity {spec!r}")
    args = {k: v for k, v in spec.items() if k != "type"}
    try:
        return _GRANULARITIES[spec["type"]](**args)
    except (TypeError, ValueError) as exc:
        raise bad(f"granularity {spec!r}: {exc}") from None


def _check_qtensor(name, qt):
    """A linear QTensor's parts must fit its dtype, shape and granularity exactly."""
    codes = INT_DTYPES.get(qt.dtype)
    if codes is None:
        return  # a block format's bytes: its own dequantize checks them
    if qt.granularity is None:
        raise ValueError(f"quantized tensor {name!r}: {qt.dtype} needs a granularity")
    n = math.prod(qt.shape)
    expected = (n * codes.bits + 7) // 8 if codes.packed else n
    data_dtype = np.uint8 if codes.packed else codes.code_dtype
    if qt.data.dtype != data_dtype or qt.data.size != expected:
        raise ValueError(f"quantized tensor {name!r}: data must be {expected} "
                         f"{np.dtype(data_dtype).name}, got {qt.data.size} {qt.data.dtype}")
    try:
        params = tuple(qt.granularity.param_shape(qt.shape))
    except (ValueError, IndexError) as exc:
        raise ValueError(f"quantized tensor {name!r}: {exc}") from None
    if qt.scale is None or qt.scale.dtype != np.float32 or qt.scale.shape != params:
        raise ValueError(f"quantized tensor {name!r}: scale must be float32 of shape {params}")
    zp = qt.zero_point
    if zp is not None and (zp.dtype != codes.code_dtype or zp.shape != params):
        raise ValueError(f"quantized tensor {name!r}: zero point must be "
                         f"{np.dtype(codes.code_dtype).name} of shape {params}")
