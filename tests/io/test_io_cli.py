"""fastq sample-model / quantize / inspect: outputs, the report, the plot, progress,
and bad input (one line on stderr, exit code 2, nothing written)."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import fastq as fq
from fastq.cli import main

TESTS = pathlib.Path(__file__).resolve().parent.parent
ROOT = TESTS.parent


def _real_quantize_model():
    try:
        from fastq.calibration import quantize_model
    except ImportError:
        return None
    return quantize_model


@pytest.fixture(autouse=True)
def quantizer(monkeypatch):
    """fq.quantize_model where fastq.calibration has it, else the stand-in."""
    if _real_quantize_model() is None:
        sys.path.insert(0, str(TESTS))
        import model_stub
        monkeypatch.setattr("fastq.cli.quantize.quantize_model",
                            lambda: model_stub.quantize_model)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("sample") / "sample.safetensors"
    assert main(["sample-model", "-o", str(path)]) == 0
    return path


def test_sample_model_is_deterministic_and_transformer_shaped(sample, tmp_path, capsys):
    again = tmp_path / "again.safetensors"
    assert main(["sample-model", "-o", str(again)]) == 0
    assert again.read_bytes() == sample.read_bytes()
    model = fq.load(sample)
    assert 2 << 20 < sample.stat().st_size < 16 << 20
    assert model["model.position_ids"].dtype == np.int64
    assert model["model.norm.weight"].ndim == 1
    assert model["model.layers.1.mlp.down_proj.weight"].shape == (256, 512)
    assert all(a.dtype == np.float32 for n, a in model.items() if n.endswith(".weight"))


def files_in(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir())


def test_quantize_writes_a_loadable_model_and_prints_the_report(sample, tmp_path, capsys):
    out = tmp_path / "model.int8.safetensors"
    assert main(["quantize", str(sample), "-o", str(out), "--recipe", "dynamic_range"]) == 0
    report = capsys.readouterr().out
    assert "ratio" in report and "model.layers.0.self_attn.q_proj.weight" in report
    assert files_in(tmp_path) == ["model.int8.safetensors"]  # no temporary file left
    original, quantized = fq.load(sample), fq.load(out)
    assert list(quantized) == list(original)
    q = quantized["model.layers.0.mlp.up_proj.weight"]
    assert isinstance(q, fq.QTensor) and q.dtype == "int8"
    x = original["model.layers.0.mlp.up_proj.weight"]
    assert fq.metrics(x, q.dequantize()).sqnr_db > 30
    ids = quantized["model.position_ids"]  # integer tensors carried through unchanged
    assert ids.dtype == np.int64 and np.array_equal(ids, original["model.position_ids"])
    assert out.stat().st_size < sample.stat().st_size / 3.5


def test_include_and_exclude(sample, tmp_path):
    out = tmp_path / "some.safetensors"
    assert main(["quantize", str(sample), "-o", str(out), "--recipe", "dynamic_range",
                 "--include", "*mlp*", "--exclude", "*down_proj*"]) == 0
    q = fq.load(out)
    assert isinstance(q["model.layers.0.mlp.up_proj.weight"], fq.QTensor)
    assert isinstance(q["model.layers.0.mlp.down_proj.weight"], np.ndarray)
    assert isinstance(q["model.layers.0.self_attn.q_proj.weight"], np.ndarray)


def test_quantize_to_gguf_is_read_by_gguf(sample, tmp_path, capsys):
    gguf = pytest.importorskip("gguf")
    out = tmp_path / "model.f16.gguf"
    assert main(["quantize", str(sample), "-o", str(out), "--recipe", "float16"]) == 0
    assert files_in(tmp_path) == ["model.f16.gguf"]
    reader = gguf.GGUFReader(out)
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["model.layers.0.mlp.up_proj.weight"] == "F16"
    assert kinds["model.position_ids"] == "I64" and kinds["model.norm.weight"] == "F32"
    assert bytes(reader.fields["fastq.recipe"].parts[-1]).decode() == "float16"


def test_inspect_table_sqnr_and_plot(sample, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "model.int4.safetensors"
    assert main(["quantize", str(sample), "-o", str(out), "--recipe", "int4_weight_only"]) == 0
    capsys.readouterr()
    png = tmp_path / "errors.png"
    assert main(["inspect", str(out), "--reference", str(sample), "--plot", str(png)]) == 0
    table = capsys.readouterr().out
    line = next(s for s in table.splitlines() if s.startswith("model.layers.0.self_attn.q_proj"))
    assert "int4" in line and "4.25" in line  # 4 bits + a float32 scale per 128
    import matplotlib.image
    image = matplotlib.image.imread(png)
    quantized = sum(isinstance(v, fq.QTensor) for v in fq.load(out).values())
    assert image.shape[:2] == (int(100 * max(4, 0.25 * quantized + 1)), 1200)


def test_inspect_without_reference(sample, capsys):
    assert main(["inspect", str(sample)]) == 0
    out = capsys.readouterr().out
    assert "model.position_ids" in out and "int64" in out and "sqnr" not in out


def truncated(path, tmp_path):
    blob = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(blob[:len(blob) // 2])
    return cut


def lying(path, tmp_path):
    blob = bytearray(path.read_bytes())
    n = int.from_bytes(blob[:8], "little")
    header = blob[8:8 + n].replace(b'"shape":[1024,256]', b'"shape":[1099511627776,256]')
    assert header != blob[8:8 + n]
    bad = tmp_path / "lies.safetensors"
    bad.write_bytes(len(header).to_bytes(8, "little") + header + blob[8 + n:])
    return bad


@pytest.mark.parametrize("case", ["missing", "extension", "not-safetensors", "truncated",
                                  "lying", "recipe", "directory", "onnx-recipe"])
def test_bad_input_is_one_line_exit_2_nothing_written(sample, tmp_path, capsys, case):
    source, out, recipe = str(sample), tmp_path / "out.safetensors", "dynamic_range"
    if case == "missing":
        source = str(tmp_path / "nope.safetensors")
    elif case == "extension":
        out = tmp_path / "out.bin"
    elif case == "not-safetensors":
        (tmp_path / "text.safetensors").write_text("hello, this is not a model\n" * 3)
        source = str(tmp_path / "text.safetensors")
    elif case == "truncated":
        source = str(truncated(sample, tmp_path))
    elif case == "lying":
        source = str(lying(sample, tmp_path))
    elif case == "recipe":
        recipe = "int3_magic"
    elif case == "directory":
        out = tmp_path / "missing" / "out.safetensors"
    elif case == "onnx-recipe":
        source = str(tmp_path / "model.onnx")
        pathlib.Path(source).write_bytes(b"\x08\x07")
        out, recipe = tmp_path / "out.onnx", "q4_0"
    before = files_in(tmp_path)
    capsys.readouterr()
    assert main(["quantize", source, "-o", str(out), "--recipe", recipe]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert files_in(tmp_path) == before
    if case in ("missing", "truncated", "lying", "not-safetensors"):
        assert main(["inspect", source]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


STUB = ("import sys; sys.path[:0] = [{tests!r}, {root!r}]\n"
        "import fastq.cli.quantize as q\n"
        "try:\n    import fastq.calibration\n"
        "except ImportError:\n    import model_stub\n"
        "    q.quantize_model = lambda: model_stub.quantize_model\n"
        "from fastq.cli import main\nsys.exit(main(sys.argv[1:]))\n")


def run_cli(argv, terminal):
    code = STUB.format(tests=str(TESTS), root=str(ROOT))
    if not terminal:
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                              timeout=300)
        return done.returncode, (done.stdout + done.stderr).decode()
    import pty
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:  # read while it runs (Linux drops a pty's unread output at exit)
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=300), b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_only(sample, tmp_path):
    pytest.importorskip("tqdm")
    argv = ["quantize", str(sample), "-o", str(tmp_path / "o.safetensors"),
            "--recipe", "dynamic_range"]
    code, shown = run_cli(argv, terminal=True)
    assert code == 0 and "tensor/s" in shown and "21/21" in shown and "ratio" in shown
    code, piped = run_cli(argv, terminal=False)
    assert code == 0 and "ratio" in piped and "21/21" not in piped and "\r" not in piped
