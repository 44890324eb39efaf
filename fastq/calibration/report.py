"""The size and error report of a quantized model: one row per tensor, then the
totals; a dict, or a Markdown table (its ``str``)."""
import math

COLUMNS = ("name", "scheme", "shape", "bytes_before", "bytes_after", "bits_per_element",
           "sqnr_db")


class Report:
    """Per tensor: ``name``, ``scheme``, ``shape``, ``bytes_before``, ``bytes_after``
    (data, scales and zero points), ``bits_per_element`` (``8 * bytes_after / size``) and
    ``sqnr_db`` (``fq.metrics``; ``inf`` for a tensor kept exactly), in ``rows``; the
    ``totals`` ``bytes_before``, ``bytes_after`` and ``ratio`` (before / after)."""

    def __init__(self, rows):
        self.rows = list(rows)
        before = sum(r["bytes_before"] for r in self.rows)
        after = sum(r["bytes_after"] for r in self.rows)
        self.totals = {"bytes_before": before, "bytes_after": after,
                       "ratio": before / after if after else math.inf}

    def as_dict(self):
        """``{"rows": [...], "totals": {...}}`` (shapes as lists)."""
        return {"rows": [{**r, "shape": list(r["shape"])} for r in self.rows],
                "totals": dict(self.totals)}

    def to_markdown(self):
        """A Markdown table of the rows, then a totals line."""
        lines = ["| name | scheme | shape | bytes before | bytes after | bits/element | SQNR dB |",
                 "|---|---|---|---:|---:|---:|---:|"]
        for r in self.rows:
            shape = "x".join(str(d) for d in r["shape"]) or "()"
            lines.append(f"| {r['name']} | {r['scheme']} | {shape} | {r['bytes_before']} | "
                         f"{r['bytes_after']} | {r['bits_per_element']:.3g} | "
                         f"{_db(r['sqnr_db'])} |")
        t = self.totals
        lines.append(f"| **total** | | | {t['bytes_before']} | {t['bytes_after']} | | |")
        lines.append("")
        lines.append(f"Size: {t['bytes_before']} -> {t['bytes_after']} bytes "
                     f"({t['ratio']:.3f}x smaller).")
        return "\n".join(lines)

    def __str__(self):
        return self.to_markdown()

    def __repr__(self):
        t = self.totals
        return (f"Report({len(self.rows)} tensors, {t['bytes_before']} -> {t['bytes_after']} "
                f"bytes, ratio {t['ratio']:.3f})")


def _db(value):
    if value is None:
        return ""
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return f"{value:.2f}"
