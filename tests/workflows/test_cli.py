import pytest

from fastq.cli import main


def test_bench_quick_prints_a_table(capsys):
    assert main(["bench", "--quick", "--size", "65536", "--repeat", "1",
                 "--only", "fp32->fp16"]) == 0
    out = capsys.readouterr().out
    assert "cast fp32->fp16" in out and "fastq" in out and "GB/s" in out


def test_bench_markdown(capsys):
    assert main(["bench", "--size", "65536", "--repeat", "1", "--only", "bf16->fp32",
                 "--markdown"]) == 0
    assert capsys.readouterr().out.count("|") > 10


@pytest.mark.parametrize("argv", [["bench", "--size", "0"], ["bench", "--repeat", "x"],
                                  ["frobnicate"], []])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_no_match_is_one_clear_line(capsys):
    assert main(["bench", "--size", "65536", "--repeat", "1", "--only", "nothing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing" in err[0]


def test_warmup_names_each_family(capsys):
    assert main(["warmup", "pack"]) == 0
    captured = capsys.readouterr()
    assert "fastq warmup: pack" in captured.err and "kernels cached" in captured.out


def test_warmup_unknown_family_is_one_line(capsys):
    assert main(["warmup", "nothing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing" in err[0]


def test_bench_sizes_prints_a_ratio_per_size(capsys):
    assert main(["bench", "--sizes", "--size", "4096", "--repeat", "3", "--only", "fp32->fp16"]) == 0
    out = capsys.readouterr().out
    assert "4096" in out and "fastq / peer" in out and "cast fp32->fp16" in out
