"""The safetensors container, read and written with NumPy alone.

Layout (https://github.com/huggingface/safetensors): 8 bytes little-endian ``N``, then
``N`` bytes of UTF-8 JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]},
"__metadata__": {str: str}}``, then the byte buffer the offsets index (relative to its
start).  The reader checks the header before trusting it: ``N`` within the file (and at
most 100 MB, the safetensors package's own bound), every dtype known, offsets inside
the buffer and not overlapping, ``prod(shape) * itemsize == end - begin`` (Python
integers: a huge declared shape is a mismatch, never an allocation).  Tensors come back
as read-only views of one ``np.memmap`` of the file.

The writer streams: each tensor's bytes go to a spill file of its alignment class
(8-, 4-, 2- and 1-byte items) as it is added, so one tensor at a time is in memory;
``close`` writes the header (padded with spaces to a multiple of 8 bytes, as the
safetensors package does), then the spills largest items first, so every tensor starts
at a multiple of its item size, into a temporary file in the output's directory that
``os.replace`` puts in place: an interrupted run leaves no partial output.
"""
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np

from .output import atomic_output, output_folder

MAX_HEADER_BYTES = 100 << 20
_CODES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
          "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U64": "uint64",
          "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
          "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu"}


def numpy_dtype(name):
    """The NumPy dtype of a dtype name (NumPy's, or an ml_dtypes one such as bfloat16)."""
    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes
        kind = getattr(ml_dtypes, name, None)
        if kind is None:
            raise ValueError(f"unknown dtype {name!r}") from None
        return np.dtype(kind)


def code_of(dtype):
    """The safetensors dtype code of a NumPy dtype, or None where it has none."""
    for code, name in _CODES.items():
        if np.dtype(dtype).name == name:
            return code
    return None


@dataclass(frozen=True)
class Entry:
    """One tensor of the file: its dtype, shape and byte range in the buffer."""
    dtype: np.dtype
    shape: tuple
    begin: int
    end: int


class SafetensorsFile:
    """A safetensors file, header checked; tensors by name as memory-mapped views.

    Raises ValueError (naming the file and the problem) for anything that is not a
    well-formed safetensors file, OSError when it cannot be read.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        size = os.path.getsize(self.path)
        with open(self.path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError(f"{self.path}: not a safetensors file (shorter than 8 bytes)")
            n = int.from_bytes(head, "little")
            if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
                raise ValueError(f"{self.path}: not a safetensors file (header length {n} "
                                 f"past the end of a {size}-byte file)")
            raw = f.read(n)
        try:
            header = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise ValueError(f"{self.path}: safetensors header is not JSON ({exc})") from None
        self.data_start = 8 + n
        self.metadata, self.entries = _checked_header(header, size - self.data_start,
                                                      self.path)
        self._map = None

    def view(self, name):
        """The tensor ``name`` as a read-only view of the mapped file (no copy)."""
        e = self.entries[name]
        if e.end == e.begin:
            empty = np.zeros(e.shape, e.dtype)
            empty.flags.writeable = False  # like the mapped views
            return empty
        if self._map is None:
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
        raw = self._map[self.data_start + e.begin:self.data_start + e.end]
        a = raw.view(np.ndarray).view(e.dtype).reshape(e.shape)
        return a if a.flags.aligned else a.copy()  # (a file written unaligned by others)

    def read(self, name):
        """The tensor ``name`` read into a new array (memory bounded by this tensor)."""
        e = self.entries[name]
        out = np.empty(e.shape, e.dtype)
        if out.nbytes:
            with open(self.path, "rb") as f:
                f.seek(self.data_start + e.begin)
                if f.readinto(out.reshape(-1).view(np.uint8)) != out.nbytes:
                    raise ValueError(f"{self.path}: file shrank while reading {name!r}")
        return out


def _checked_header(header, buffer_bytes, path):
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header must be a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{path}: __metadata__ must map strings to strings")
    entries = {}
    for name, info in header.items():
        def bad(why):
            return ValueError(f"{path}: tensor {name!r}: {why}")
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad("entry must hold dtype, shape and data_offsets")
        if info["dtype"] not in _CODES:
            raise bad(f"unknown dtype {info['dtype']!r}")
        shape, offsets = info["shape"], info["data_offsets"]
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise bad(f"shape must be a list of non-negative integers, got {shape!r}")
        if not isinstance(offsets, list) or len(offsets) != 2 or \
                not all(_is_count(o) for o in offsets):
            raise bad(f"data_offsets must be two non-negative integers, got {offsets!r}")
        begin, end = offsets
        if not begin <= end <= buffer_bytes:
            raise bad(f"data_offsets {offsets} outside the {buffer_bytes}-byte buffer")
        dtype = numpy_dtype(_CODES[info["dtype"]])
        if math.prod(shape) * dtype.itemsize != end - begin:
            raise bad(f"shape {shape} of {info['dtype']} does not fill its "
                      f"{end - begin} bytes")
        entries[name] = Entry(dtype, tuple(shape), begin, end)
    previous_end, previous = 0, None
    for name, e in sorted(entries.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if e.begin < previous_end:
            raise ValueError(f"{path}: tensors {previous!r} and {name!r} overlap")
        if e.end > e.begin:
            previous_end, previous = e.end, name
    return metadata, entries


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class SafetensorsWriter:
    """Streams tensors into a new safetensors file at ``path`` (see the module doc).

    Use as a context manager: leaving it normally writes the file, an exception
    discards everything (no output, no temporary file left).
    """

    def __init__(self, path, metadata=None):
        self.path = output_folder(path)
        self.folder = os.path.dirname(self.path)
        self.metadata = dict(metadata or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items()):
            raise TypeError("metadata must map strings to strings")
        self._spills = {}  # item size -> (temporary file, bytes written)
        self._entries = {}  # name -> (code, shape, item size, offset in its spill, nbytes)

    def add(self, name, array):
        """Append one tensor (a NumPy array of a dtype safetensors knows)."""
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"tensor names must be non-empty strings, got {name!r}")
        if name in self._entries:
            raise ValueError(f"tensor {name!r} added twice")
        a = np.asarray(array)
        code = code_of(a.dtype)
        if code is None:
            raise ValueError(f"tensor {name!r}: dtype {a.dtype} has no safetensors code")
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        a = np.require(a, requirements="C")
        size = a.dtype.itemsize
        spill, written = self._spills.get(size) or (tempfile.TemporaryFile(dir=self.folder), 0)
        if a.nbytes:
            spill.write(a.reshape(-1).view(np.uint8).data)
        self._entries[name] = (code, list(a.shape), size, written, a.nbytes)
        self._spills[size] = (spill, written + a.nbytes)

    def close(self):
        """Write the file: header, then the spills, into a temporary file renamed."""
        base, header = {}, {}
        for size in sorted(self._spills, reverse=True):
            base[size] = sum(self._spills[s][1] for s in self._spills if s > size)
        for name, (code, shape, size, offset, nbytes) in self._entries.items():
            begin = base[size] + offset
            header[name] = {"dtype": code, "shape": shape, "data_offsets": [begin, begin + nbytes]}
        if self.metadata:
            header["__metadata__"] = self.metadata
        text = json.dumps(header, separators=(",", ":")).encode("utf-8")
        text += b" " * (-(8 + len(text)) % 8)
        try:
            with atomic_output(self.path) as tmp, open(tmp, "wb") as out:
                out.write(len(text).to_bytes(8, "little"))
                out.write(text)
                for size in sorted(self._spills, reverse=True):
                    spill = self._spills[size][0]
                    spill.seek(0)
                    shutil.copyfileobj(spill, out, 16 << 20)
        finally:
            self.abort()

    def abort(self):
        """Discard what was added (the spill files go with it)."""
        for spill, _ in self._spills.values():
            spill.close()
        self._spills.clear()

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:
            self.abort()
