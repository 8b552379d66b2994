"""The forward-pass benchmark's table and its errors (no timing)."""

from bench.forward import main, table


def test_table_shows_both_ways_per_precision_and_the_cpu():
    cpu = {"kind": "native", "model": "Some CPU", "cpus": 2}
    row = {"precision": "bf16", "separate_ms": 26.1, "fused_ms": 22.9, "ratio": 0.878, "max_logit_diff": 0.0}
    kind = {"cpu": cpu, "tokens_per_forward": 436.0, "rows": [row]}
    md = table({"date": "d", "command": "c", "kinds": [kind]})
    assert "## native: Some CPU, 2 CPUs" in md and "Median tokens per forward: 436" in md
    assert "| bf16 | 26.1 | 22.9 | 0.878 | 0.0 |" in md


def test_an_unknown_cpu_kind_is_one_line_and_exit_2(capsys):
    assert main(["--kinds", "arm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown CPU kind 'arm'") and "\n" not in err
