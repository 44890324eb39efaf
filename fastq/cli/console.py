"""What the command line prints: aligned tables, byte sizes and a progress display."""
import shutil
import sys


def format_table(headers, rows):
    """A plain-text table, columns padded to their widest cell (numbers right-aligned)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in rows) and rows for i in range(len(headers))]

    def line(row):
        return "  ".join(c.rjust(w) if n else c.ljust(w)
                         for c, w, n in zip(row, widths, numeric)).rstrip()
    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] +
                     [line(r) for r in cells[1:]])


def _is_number(value):
    return value is None or isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, tuple):
        return "x".join(map(str, value)) or "()"
    return str(value)


def human_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


class Progress:
    """Progress over steps: a tqdm bar when stdout is a terminal and tqdm is
    installed, else a one-line counter rewritten in place on a terminal; nothing when
    stdout is not a terminal (a pipe or a file gets the report alone)."""

    def __init__(self, description, stream=None):
        self.stream = stream or sys.stderr
        self.description = description
        self.on_terminal = sys.stdout.isatty()
        self._bar = None
        self._shown = False

    def __call__(self, done, total, name):
        """Show that ``done`` of ``total`` steps are done, the last one ``name``."""
        if not self.on_terminal:
            return
        if not self._shown:  # the bar starts with the first step, when the total is known
            self._shown = True
            try:
                from tqdm import tqdm
                # a terminal that reports 0 x 0 (a bare pty) makes tqdm hide its bar:
                # shutil's size falls back to 80 x 24 there
                size = shutil.get_terminal_size()
                self._bar = tqdm(total=total, desc=self.description, unit="tensor",
                                 file=self.stream, leave=False, mininterval=0,
                                 ncols=size.columns, nrows=size.lines)
            except ImportError:
                pass
        if self._bar is not None:
            self._bar.set_postfix_str(name[-40:], refresh=False)
            self._bar.update(done - self._bar.n)
        else:
            self.stream.write(f"\r{self.description}: {done}/{total} {name[-40:]:<40}")
            self.stream.flush()

    def close(self):
        if self._bar is not None:
            self._bar.close()
        elif self._shown:
            self.stream.write("\n")
