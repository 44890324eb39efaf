"""How a granularity meets the chunks of a Dask array.

A granularity is a block size ``b`` per dimension ``d`` (``fastq.core.granularity``).
Each axis plays one of three roles:

- *whole* (``b >= d``): one parameter along it; each chunk reduces its range along the
  axis, and the chunks' ranges are then reduced across chunks (a tree reduction);
- *channel* (``b == 1``): a parameter per index; chunks never share one;
- *group* (``1 < b < d``): chunk boundaries must fall on group boundaries, so that every
  group lies in one chunk: the axis is rechunked to multiples of ``b`` where it is not.

Packed 4- and 2-bit codes are packed per chunk along the last axis: its chunk
boundaries must fall on whole bytes (multiples of ``8 // bits`` elements), and each row
must fill whole bytes unless the array is one row, so that the chunks' bytes, laid end
to end in C order, are the in-memory packing byte for byte.
"""
import math

from ..core.granularity import PerBlock

WHOLE, CHANNEL, GROUP = "whole", "channel", "group"


class ChunkLayout:
    """The roles of ``shape``'s axes under ``granularity`` and the chunking they need.

    ``granularity.blocks(shape)`` validates the granularity against the shape (axis out
    of range, block rank), raising ValueError naming the problem.
    """

    def __init__(self, shape, granularity):
        self.shape = tuple(shape)
        self.granularity = granularity
        self.blocks = tuple(granularity.blocks(self.shape))
        self.roles = tuple(WHOLE if b >= d else CHANNEL if b == 1 else GROUP
                           for d, b in zip(self.shape, self.blocks))
        self.param_shape = granularity.param_shape(self.shape)
        self.grid = tuple(-(-d // max(b, 1)) for d, b in zip(self.shape, self.blocks))
        self.whole_axes = tuple(i for i, r in enumerate(self.roles) if r == WHOLE)

    def units(self, bits=8):
        """The multiple each axis's chunk boundaries must fall on (1: any)."""
        units = [b if r == GROUP else 1 for b, r in zip(self.blocks, self.roles)]
        if bits < 8 and units:
            units[-1] = math.lcm(units[-1], 8 // bits)
        return units

    def check_packable(self, bits, name="x"):
        """ValueError when ``bits``-bit codes cannot be packed per chunk (see module)."""
        if bits >= 8 or not self.shape:
            return
        row, rows = self.shape[-1], math.prod(self.shape[:-1])
        if row * bits % 8 and rows > 1:
            raise ValueError(
                f"{name} has a last axis of {row} elements: {bits}-bit codes packed per chunk "
                f"need it to fill whole bytes ({8 // bits} codes a byte) when there is more "
                "than one row; pad the last axis or quantize in memory with fq.quantize")

    def aligned_chunks(self, chunks, bits=8):
        """``chunks`` with each axis's boundaries moved onto its unit where they are not
        (the axes already aligned keep their chunks: no rechunk where none is needed)."""
        out = []
        for axis_chunks, unit in zip(chunks, self.units(bits)):
            out.append(axis_chunks if _aligned(axis_chunks, unit)
                       else _realigned(axis_chunks, unit))
        return tuple(out)

    def chunk_blocks(self, chunk_shape):
        """The block shape of the granularity inside one chunk (a PerBlock of it
        quantizes the chunk as the whole array's granularity does)."""
        return tuple(c if r == WHOLE else 1 if r == CHANNEL else b
                     for c, b, r in zip(chunk_shape, self.blocks, self.roles))

    def chunk_granularity(self, chunk_shape):
        return PerBlock(tuple(max(b, 1) for b in self.chunk_blocks(chunk_shape)))

    def chunk_grid(self, chunk_shape):
        """The parameter grid of one chunk: 1 along whole axes, its own length along
        channel axes, ``ceil(c / b)`` groups along group axes."""
        return tuple(1 if r == WHOLE else c if r == CHANNEL else -(-c // b)
                     for c, b, r in zip(chunk_shape, self.blocks, self.roles))

    def grid_chunks(self, chunks):
        """Dask chunks of the per-chunk parameter grids (before the whole axes are
        reduced across chunks)."""
        return tuple(tuple(self.chunk_grid_along(axis, c) for c in axis_chunks)
                     for axis, axis_chunks in enumerate(chunks))

    def chunk_grid_along(self, axis, c):
        role, b = self.roles[axis], self.blocks[axis]
        return 1 if role == WHOLE else c if role == CHANNEL else -(-c // b)


def _aligned(axis_chunks, unit):
    """Whether every chunk boundary but the array's end is a multiple of ``unit``."""
    edge = 0
    for c in axis_chunks[:-1]:
        edge += c
        if edge % unit:
            return False
    return True


def _realigned(axis_chunks, unit):
    """Chunks of about the same mean size, each a multiple of ``unit`` but the last."""
    total = sum(axis_chunks)
    size = max(unit, round(total / len(axis_chunks) / unit) * unit)
    full, rest = divmod(total, size)
    return (size,) * full + ((rest,) if rest else ())


def packed_chunks(chunks, bits):
    """Chunks of the packed bytes: the last axis's chunks in bytes (each but the last a
    whole number of bytes by ``ChunkLayout.aligned_chunks``)."""
    if bits >= 8:
        return tuple(chunks)
    last = tuple(-(-c * bits // 8) for c in chunks[-1])
    return tuple(chunks[:-1]) + (last,)
