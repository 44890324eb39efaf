"""``fq.gguf.write`` / ``fq.gguf.read``: GGUF files through the ``gguf`` package.

float32, float16, bfloat16, float64 and int8/16/32/64 arrays are stored as GGUF's F32,
F16, BF16, F64 and I8..I64 tensors; a :class:`fastq.QTensor` in a GGML block format
(``q8_0``, ``q4_0``, ``q4_K``, ``mxfp4``... the formats of ``fastq.ops.blocks`` that
GGUF has a type for) is stored natively: ``qt.data`` are the GGML block bytes, written
as they are.  Anything else (a linear int8 QTensor, NF4, a uint8 array...) raises
ValueError naming the tensor: GGUF has no way to hold it.  GGUF orders dimensions
innermost first; this module speaks NumPy's order (``shape`` as NumPy gives it).
"""
import math

import numpy as np

from ..ops import QTensor
from ..ops.blocks import FORMATS
from .output import atomic_output
from .safetensors_file import numpy_dtype

ARCHITECTURE = "fastq"
MAX_NAME = 63  # GGML_MAX_NAME (64) less the terminating zero
_PLAIN = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64",
          "int8": "I8", "int16": "I16", "int32": "I32", "int64": "I64"}


def _gguf():
    try:
        import gguf
    except ImportError:
        raise ImportError('GGUF files need the gguf package: pip install "fastq[gguf]"') from None
    return gguf


def ggml_type(value, name):
    """The GGMLQuantizationType a tensor is stored as, or ValueError naming it."""
    gguf = _gguf()
    if isinstance(value, QTensor):
        kind = value.dtype.upper() if value.dtype in FORMATS else None
        if kind is None or kind not in gguf.GGMLQuantizationType.__members__:
            raise ValueError(f"tensor {name!r}: GGUF cannot hold a {value.dtype} QTensor "
                             "(GGML block formats only: q8_0, q4_0, q4_K, mxfp4, ...)")
        return gguf.GGMLQuantizationType[kind]
    kind = _PLAIN.get(np.asarray(value).dtype.name)
    if kind is None:
        raise ValueError(f"tensor {name!r}: GGUF cannot hold dtype {np.asarray(value).dtype}")
    return gguf.GGMLQuantizationType[kind]


def _payload(value, kind, name):
    """``(array to write, NumPy-order element shape)``."""
    if not isinstance(value, QTensor):
        a = np.require(np.asarray(value), requirements="C")
        return a.reshape(-1).view(np.uint8), a.shape
    gguf = _gguf()
    block, type_size = gguf.GGML_QUANT_SIZES[kind]
    shape = value.shape
    if not shape or shape[-1] % block:
        raise ValueError(f"tensor {name!r}: last dimension {shape[-1:]} is not a multiple "
                         f"of the {value.dtype} block ({block})")
    data = np.require(np.asarray(value.data), requirements="C").reshape(-1).view(np.uint8)
    if data.size != math.prod(shape) // block * type_size:
        raise ValueError(f"tensor {name!r}: {data.size} bytes do not hold {value.dtype} "
                         f"blocks of shape {shape}")
    return data, shape


def write(path, tensors, metadata=None):
    """Write ``tensors`` (name -> array or GGML-format QTensor) as a GGUF file.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (its directory must exist); written to a temporary file and renamed.
    tensors : mapping of str to array or QTensor
        Read one at a time while writing (memory-mapped inputs stay unread until then).
    metadata : mapping of str to str, optional
        Stored as GGUF string key-value pairs.

    Raises
    ------
    ValueError
        A tensor GGUF cannot hold (named), a name longer than 63 bytes, or a missing
        directory.
    ImportError
        The ``gguf`` package is missing (``pip install "fastq[gguf]"``).
    """
    gguf = _gguf()
    if not hasattr(tensors, "items"):
        raise TypeError(f"tensors must be a mapping of names to arrays, got {type(tensors).__name__}")
    plan = []  # checked in full before the output is opened
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or len(name.encode()) > MAX_NAME:
            raise ValueError(f"GGUF tensor names are 1 to {MAX_NAME} bytes, got {name!r}")
        kind = ggml_type(value, name)
        data, shape = _payload(value, kind, name)
        plan.append((name, value, kind, shape, data.nbytes))
    with atomic_output(path) as tmp:
        writer = gguf.GGUFWriter(tmp, ARCHITECTURE)
        for key, value in (metadata or {}).items():
            writer.add_string(str(key), str(value))
        for name, _, kind, shape, nbytes in plan:
            writer.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=kind)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for name, value, kind, _, _ in plan:  # (a mapped input is read here, in turn)
            writer.write_tensor_data(_payload(value, kind, name)[0])
        writer.close()


def read(path):
    """Read a GGUF file: name -> ndarray (float and integer tensors, memory-mapped) or
    :class:`fastq.QTensor` (GGML block formats fastq has).

    Raises
    ------
    ValueError
        Not a readable GGUF file, or a tensor type fastq does not have (named).
    """
    gguf = _gguf()
    try:
        reader = gguf.GGUFReader(path, "r")
    except (OSError, ImportError):
        raise
    except Exception as exc:  # the reader raises what its parsing meets; say it once
        raise ValueError(f"{path}: not a readable GGUF file ({type(exc).__name__}: {exc})") \
            from None
    formats = {f.upper(): f for f in FORMATS}  # GGML's Q4_K is fastq's "q4_K"
    out = {}
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        kind = gguf.GGMLQuantizationType(t.tensor_type).name
        plain = {v: k for k, v in _PLAIN.items()}.get(kind)
        raw = np.asarray(t.data).reshape(-1).view(np.uint8)
        if plain is not None:
            out[t.name] = raw.view(numpy_dtype(plain)).reshape(shape)
        elif kind in formats:
            out[t.name] = from_ggml_bytes(raw, formats[kind], shape)
        else:
            raise ValueError(f"{path}: tensor {t.name!r} has GGML type {kind}, "
                             "which fastq cannot read")
    return out


def from_ggml_bytes(data, dtype, shape):
    """A QTensor of the GGML format ``dtype`` over its block bytes ``data`` (rows of
    blocks: ``shape[:-1] + (bytes per row,)``, as ``fq.quantize`` makes them)."""
    return QTensor(data.reshape(tuple(shape[:-1]) + (-1,)), dtype, None, None, shape, None)
