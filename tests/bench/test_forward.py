"""The forward-pass benchmark's table and its errors (no timing)."""

from bench.forward import main, table, ways


def test_table_shows_both_ways_per_precision_and_the_cpu():
    cpu = {"kind": "native", "model": "Some CPU", "cpus": 2}
    row = {"precision": "bf16", "ways": ["separate", "fused"], "ms": {"separate": 26.1, "fused": 22.9},
           "ratio": 0.878, "max_logit_diff": 0.0, "mean_logit_diff": 0.0}  # fmt: skip
    kind = {"cpu": cpu, "reader": "reader/model", "tokens_per_forward": 436.0, "rows": [row]}
    md = table({"date": "d", "command": "c", "compare": "fuse", "kinds": [kind]})
    assert "## native: Some CPU, 2 CPUs" in md and "Median tokens per forward: 436" in md
    assert "| precision | separate ms | fused ms | fused / separate |" in md
    assert "| bf16 | 26.1 | 22.9 | 0.878 | 0.0 | 0.0 |" in md


def test_engines_compare_int8_on_both_kernel_libraries():
    assert ways("engines", native_bf16=True) == [
        ("int8", [("onednn", {"engine": "onednn"}), ("fbgemm", {"engine": "fbgemm"})])
    ]
    assert [p for p, _ in ways("fuse", native_bf16=False)] == ["fp32", "int8"]


def test_a_folder_without_a_reader_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["--reader-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --reader-dir") and "\n" not in err


def test_an_unknown_cpu_kind_is_one_line_and_exit_2(capsys):
    assert main(["--kinds", "arm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown CPU kind 'arm'") and "\n" not in err


def test_no_kind_or_no_round_is_refused_before_any_work(capsys):
    for argv, says in ((["--kinds", ","], "no CPU kind"), (["--rounds", "0"], "--rounds")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and says in err and "\n" not in err
