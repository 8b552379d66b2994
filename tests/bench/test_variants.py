"""The per-CPU-kind benchmark: CPU description, emulation, variants and its table (no timing)."""

from bench.cpu import AVX2_ENV, describe
from bench.variants import FOCUS, main, table, variants


def test_describe_names_the_cpu_and_sees_the_avx2_emulation(monkeypatch):
    cpu = describe()
    assert cpu["cpus"] >= 1 and cpu["model"]
    assert cpu["kind"] == "native"
    for k, v in AVX2_ENV.items():
        monkeypatch.setenv(k, v)
    cpu = describe()
    assert cpu["kind"] == "avx2 (emulated)" and cpu["native_bf16"] is False


def test_bf16_is_measured_only_where_it_is_native():
    assert ("bf16", 0) not in variants(native_bf16=False)
    assert {("fp32", 0), ("fp32", FOCUS), ("int8", 0), ("int8", FOCUS)} <= set(variants(False))
    assert ("bf16", FOCUS) in variants(native_bf16=True)
    # auto gets a row of its own where it runs a reader no other row runs (the 4-layer student)
    assert not any(p == "auto" for p, _ in variants(False))
    assert variants(False, auto_row=True)[:2] == [("auto", 0), ("auto", FOCUS)]


def test_an_unknown_cpu_kind_is_one_line_and_exit_2(capsys):
    assert main(["--kinds", "arm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown CPU kind 'arm'") and "\n" not in err


def test_table_shows_each_kind_with_its_cpu_and_accuracy_beside_speed():
    cpu = {"kind": "avx2 (emulated)", "model": "Some CPU", "cpus": 2, "instruction_sets": ["avx2"]}
    row = {"precision": "int8", "focus": 300, "c1_p50_ms": 41.5, "validation_f1": 72.1, "seed_f1": 75.0}
    kind = {"cpu": cpu, "auto": "fp32", "int8_engine": "fbgemm", "rows": [row]}
    md = table({"date": "d", "command": "c", "kinds": [kind]})
    assert "## avx2 (emulated): Some CPU, 2 CPUs" in md and "`auto` chooses fp32" in md
    assert "int8 runs on fbgemm's kernels" in md
    assert "capped at AVX2 by ATEN_CPU_CAPABILITY=avx2" in md
    line = next(x for x in md.splitlines() if x.startswith("| int8"))
    assert "41.5" in line and "72.1" in line and "75.0" in line


def test_a_reader_dir_without_a_trained_reader_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["--reader-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no reader.json" in err and "\n" not in err


def test_a_tag_that_is_not_a_plain_name_is_refused(capsys):
    assert main(["--tag", "../elsewhere"]) == 2
    assert "--tag" in capsys.readouterr().err


def test_several_readers_are_named_in_their_own_column():
    cpu = {"kind": "native", "model": "Some CPU", "cpus": 2, "instruction_sets": []}
    rows = [{"reader": "reader/model", "precision": "fp32", "focus": 0, "read_ms": 70.0},
            {"reader": ".citeqa/small", "precision": "fp32", "focus": 0, "read_ms": 47.0}]  # fmt: skip
    md = table({"date": "d", "command": "c", "kinds": [{"cpu": cpu, "auto": "fp32", "rows": rows}]})
    header = next(x for x in md.splitlines() if x.startswith("| reader | precision"))
    rule = md.splitlines()[md.splitlines().index(header) + 1]
    assert rule.count("|") == header.count("|")
    assert any(x.startswith("| .citeqa/small | fp32 | 0 |") and "47.0" in x for x in md.splitlines())


def test_readers_reach_the_workers_as_absolute_paths():
    from bench.variants import _without_reader_dirs

    argv = ["--kinds", "avx2", "--reader-dir", "a", "--reader-dir=b", "--tag", "t"]
    assert _without_reader_dirs(argv) == ["--kinds", "avx2", "--tag", "t"]


def test_a_second_reader_dir_without_a_trained_reader_is_refused(tmp_path, capsys):
    assert main(["--reader-dir", "reader/model", "--reader-dir", str(tmp_path)]) == 2
    assert "no reader.json" in capsys.readouterr().err


def test_rows_at_several_sure_values_say_which_in_their_own_column(capsys):
    import pytest

    cpu = {"kind": "native", "model": "Some CPU", "cpus": 2, "instruction_sets": []}
    rows = [{"precision": "auto", "focus": 0, "sure": 0.5, "tokens": 300.0},
            {"precision": "auto", "focus": 0, "sure": 0.0, "tokens": 420.0}]  # fmt: skip
    md = table({"date": "d", "command": "c", "kinds": [{"cpu": cpu, "auto": "int8", "rows": rows}]})
    assert "| precision | focus | sure | tokens read |" in md
    assert any(x.startswith("| auto | 0 | 0.0 | 420.0 |") for x in md.splitlines())
    for bad in ("2", "a,b", ","):
        with pytest.raises(SystemExit):
            main(["--sure", bad])
        assert "--sure" in capsys.readouterr().err


def test_options_that_would_measure_nothing_are_refused_before_a_run(capsys, tmp_path):
    """A run of no variant or no CPU kind once wrote an empty table over the day's results."""
    for argv, says in (
        (["--only", "bogus/0"], "--only 'bogus/0'"),
        (["--only", ","], "names no variant"),
        (["--kinds", ""], "no CPU kind"),
        (["--requests", "0"], "--requests"),
        (["--seconds-c8", "nan"], "--seconds-c8"),
        (["--out-dir", str(tmp_path / "f")], "is a file"),
    ):
        (tmp_path / "f").write_text("")
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and says in err and "\n" not in err
    from bench.variants import _only_problem

    assert _only_problem("fp32/0,int8/300") is None and _only_problem("") is None
