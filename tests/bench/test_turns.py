"""Variants in turns: the variant syntax, clear errors, pooling and ratios, the table (no timing)."""

import pytest

from bench.turns import Variant, main, parse_variant, summary, table


def test_a_variant_is_a_name_and_its_settings():
    v = parse_variant("sure:CITEQA_READER_SURE=0.5, OMP_NUM_THREADS=1")
    assert (v.name, v.env) == ("sure", {"CITEQA_READER_SURE": "0.5", "OMP_NUM_THREADS": "1"})
    assert parse_variant("defaults:").env == {}
    for bad in ("no-colon", ":A=1", "x:lower=1", "x:A", "a b:A=1"):
        with pytest.raises(ValueError, match="--variant"):
            parse_variant(bad)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--variant", "a:"], "twice or more"),
        (["--variant", "a:", "--variant", "a:X=1"], "name of its own"),
        (["--variant", "a:", "--variant", "b:", "--kind", "arm"], "--kind"),
        (["--variant", "a:", "--variant", "b:", "--tag", "../x"], "--tag"),
        (["--variant", "a:", "--variant", "b:", "--rounds", "0"], "--rounds"),
        (["--variant", "a", "--variant", "b:"], "NAME:KEY=VALUE"),
        (["--variant", "a:", "--variant", "b:", "--turn-s", "nan"], "--turn-s"),
        (["--variant", "a:", "--variant", "b:", "--turn-s", "inf"], "--turn-s"),
        (["--variant", "a:", "--variant", "b:", "--out-dir", __file__], "is a file"),  # checked first
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv, says, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and "\n" not in err


def test_turns_are_pooled_and_compared_with_the_first_variant():
    a = Variant(
        "all", {"CITEQA_READER_SURE": "0"}, turns=[(100, 10.0), (120, 10.0)], c8=[0.5] * 220, c1=[0.08] * 4
    )
    b = Variant("sure", {}, turns=[(150, 10.0), (130, 10.0)], c8=[0.4] * 280, c1=[0.06] * 4)
    rows = summary([a, b])
    assert rows[0]["c8_requests_per_s"] == 11.0 and rows[1]["c8_requests_per_s"] == 14.0
    assert rows[0]["c8_ratio"] == 1.0 and rows[1]["c8_ratio"] == round(14 / 11, 3)
    assert rows[1]["c8_per_turn"] == [15.0, 13.0] and rows[1]["settings"] == "(defaults)"
    assert rows[0]["c1_p50_ms"] == 80.0 and rows[1]["c8_p99_ms"] == 400.0
    cpu = {"kind": "avx2 (emulated)", "model": "Some CPU", "cpus": 2, "instruction_sets": ["avx2"]}
    md = table({"date": "d", "command": "c", "cpu": cpu, "kind": "avx2", "rounds": 2, "turn_s": 10.0,
                "c1_requests": 2, "rows": rows})  # fmt: skip
    assert "capped at AVX2 by ATEN_CPU_CAPABILITY=avx2" in md and "2 rounds of 10 s" in md
    assert "| sure | (defaults) | 14.0 | 1.273 |" in md
    assert "- all: 10.0, 12.0 (median 11.00)" in md


def test_without_sequential_requests_their_columns_stay_empty():
    [row] = summary([Variant("a", {}, turns=[(10, 1.0)], c8=[0.1] * 10)])
    assert row["c1_p50_ms"] is None and row["c1_requests"] == 0 and row["c8_ratio"] == 1.0
