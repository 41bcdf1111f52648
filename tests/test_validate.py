"""``sweepsim validate``: the expected file must account for every trace request, known mismatches
(``known_mismatches.toml``) are XFAIL/XPASS unless ``--strict``, directories of cases and the no-argument form.

Every case here is a copy of the small ``tests/oracle/test_trace_baseline`` (3 requests) built in tmp_path, so each
invocation runs in well under a second.
"""
import csv
import shutil

import pytest

import sweepsim.results.validate
from sweepsim import PROJECT_ROOT
from tests.cli_helpers import assert_input_error, invoke, ok

SMALL_CASE = PROJECT_ROOT / "tests" / "oracle" / "test_trace_baseline"
REASON = "perturbed on purpose by the test"


def read_rows(case):
    with open(case / "expected_requests.csv", newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def write_rows(case, fieldnames, rows):
    with open(case / "expected_requests.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


def make_case(root, name="small", *, perturb=False, known=None):
    """A copy of the small case under ``root``; ``perturb`` moves request 1's expected e2e by 1 s (2/3 match);
    ``known`` writes ``root/known_mismatches.toml`` with these case names."""
    case = root / name
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SMALL_CASE, case)
    if perturb:
        fieldnames, rows = read_rows(case)
        assert [r["request_id"] for r in rows] == ["0", "1", "2"]
        rows[1]["e2e"] = repr(float(rows[1]["e2e"]) + 1.0)
        write_rows(case, fieldnames, rows)
    if known:
        (root / "known_mismatches.toml").write_text("".join(f'{n} = "{REASON}"\n' for n in known))
    return case


def snapshot(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ----------------------------------------------------------------- the expected file covers the trace exactly


def test_missing_expected_row_exit_2_names_request(tmp_path):
    case = make_case(tmp_path / "cases")
    fieldnames, rows = read_rows(case)
    write_rows(case, fieldnames, [r for r in rows if r["request_id"] != "1"])
    before = snapshot(tmp_path)
    result = invoke("validate", case, "--out", tmp_path / "vout")
    assert_input_error(result, "expected_requests.csv", "request_id", "first request_id 1", "1 of 3")
    assert snapshot(tmp_path) == before


def test_extra_expected_id_exit_2(tmp_path):
    case = make_case(tmp_path / "cases")
    fieldnames, rows = read_rows(case)
    write_rows(case, fieldnames, rows + [dict(rows[2], request_id="99")])
    result = invoke("validate", case)
    assert_input_error(result, "expected_requests.csv", "request_id", "not in trace.csv", "first request_id 99")


def test_duplicate_expected_id_exit_2(tmp_path):
    case = make_case(tmp_path / "cases")
    fieldnames, rows = read_rows(case)
    write_rows(case, fieldnames, rows + [rows[1]])
    result = invoke("validate", case)
    assert_input_error(result, "expected_requests.csv", "request_id", "request_id 1 appears 2 times")


@pytest.mark.parametrize("column, value", [("ttft", "abc"), ("e2e", "1.2.3"), ("completed", "yes")])
def test_non_numeric_expected_column_exit_2(tmp_path, column, value):
    case = make_case(tmp_path / "cases")
    fieldnames, rows = read_rows(case)
    rows[2][column] = value
    write_rows(case, fieldnames, rows)
    result = invoke("validate", case)
    assert_input_error(result, "expected_requests.csv", f": {column}: ", "request_id 2", repr(value))


@pytest.mark.parametrize("content, needle", [("HEADER", "no rows"), ("", "empty")])
def test_header_only_or_empty_expected_file_exit_2_writes_nothing(tmp_path, content, needle):
    case = make_case(tmp_path / "cases")
    path = case / "expected_requests.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n" if content == "HEADER" else "")
    before = snapshot(tmp_path)
    result = invoke("validate", case, "--out", tmp_path / "vout")
    assert_input_error(result, str(path), needle)
    assert not (tmp_path / "vout").exists()
    assert snapshot(tmp_path) == before


def test_out_below_a_regular_file_exit_2(tmp_path):
    case = make_case(tmp_path / "cases")
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    result = invoke("validate", case, "--out", tmp_path / "afile" / "vout")
    assert_input_error(result, "--out", "afile")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------- known mismatches


def test_known_mismatch_is_xfail_exit_0(tmp_path):
    case = make_case(tmp_path / "cases", perturb=True, known=["small"])
    result = ok(invoke("validate", case))
    lines = result.stdout.splitlines()
    assert lines[0].startswith("XFAIL small: 2/3 requests within 1e-06 s")
    assert lines[0].endswith(f"(known mismatch: {REASON})")
    assert "request 1:" in result.stdout
    assert not any(line.startswith(("FAIL", "PASS")) for line in lines)


def test_known_mismatch_with_strict_fails_exit_1(tmp_path):
    case = make_case(tmp_path / "cases", perturb=True, known=["small"])
    result = invoke("validate", case, "--strict")
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("FAIL small: 2/3")
    assert "XFAIL" not in result.stdout


def test_unlisted_mismatch_still_fails(tmp_path):
    case = make_case(tmp_path / "cases", perturb=True, known=["some_other_case"])
    result = invoke("validate", case)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("FAIL small: 2/3")


def test_known_mismatch_that_matches_is_xpass_exit_0(tmp_path):
    case = make_case(tmp_path / "cases", known=["small"])
    result = ok(invoke("validate", case))
    assert result.stdout.startswith("XPASS small: 3/3")
    assert "known_mismatches.toml" in result.stdout


def test_bad_known_mismatches_file_exit_2(tmp_path):
    case = make_case(tmp_path / "cases")
    (tmp_path / "cases" / "known_mismatches.toml").write_text("small = 3\n")
    result = invoke("validate", case)
    assert_input_error(result, "known_mismatches.toml", "small")


# ----------------------------------------------------------------------- folders of cases, no argument


def test_folder_of_cases_runs_each(tmp_path):
    root = tmp_path / "cases"
    make_case(root, "a_clean")
    make_case(root, "b_perturbed", perturb=True, known=["b_perturbed"])
    out = tmp_path / "vout"
    result = ok(invoke("validate", root, "--out", out))
    lines = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert [line.split(":")[0] for line in lines] == ["PASS a_clean", "XFAIL b_perturbed"]
    assert sorted(p.name for p in out.iterdir()) == ["a_clean", "b_perturbed"]
    assert (out / "a_clean" / "requests.parquet").is_file()


def test_no_argument_runs_the_default_cases(tmp_path, monkeypatch):
    root = tmp_path / "shipped"
    make_case(root, "small", perturb=True, known=["small"])
    monkeypatch.setattr(sweepsim.results.validate, "DEFAULT_CASES", root)
    monkeypatch.chdir(tmp_path)
    result = ok(invoke("validate"))
    assert result.stdout.startswith("XFAIL small: 2/3")
    result = invoke("validate", "--strict")
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("FAIL small: 2/3")


def test_no_argument_without_shipped_cases_exit_2(tmp_path, monkeypatch):
    monkeypatch.setattr(sweepsim.results.validate, "DEFAULT_CASES", tmp_path / "absent")
    result = invoke("validate")
    assert_input_error(result, str(tmp_path / "absent"), "pass case directories")


def test_default_cases_are_the_ones_in_the_repository():
    assert sweepsim.results.validate.DEFAULT_CASES == PROJECT_ROOT / "tests" / "oracle"
    assert len(sweepsim.results.validate.default_cases()) >= 9
