"""Shared helpers for CLI tests (click's CliRunner on ``sweepsim.cli.main.main``)."""
import inspect

from click.testing import CliRunner

from sweepsim.cli.main import main


def _runner() -> CliRunner:
    # click < 8.2 mixes stderr into stdout unless told not to; click >= 8.2 always keeps it separate
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


def invoke(*args):
    return _runner().invoke(main, [str(a) for a in args])


def ok(result):
    """Assert a successful invocation (showing the output and any traceback otherwise)."""
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def assert_input_error(result, *needles):
    """Exit code 2, exactly one stderr line ``error: ...`` containing every needle, nothing on stdout."""
    detail = (result.output, repr(result.exception))
    assert result.exit_code == 2, detail
    assert "Traceback" not in result.output, detail
    lines = result.stderr.splitlines()
    assert len(lines) == 1, detail
    line = lines[0]
    assert line.startswith("error: "), detail
    for needle in needles:
        assert needle in line, (needle, line)
    assert result.stdout == "", detail
    return line
