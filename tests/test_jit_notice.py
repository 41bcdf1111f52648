"""The first-run compile notice: printed once per kernel and cache, silent once the cache has a run."""
import numba

from sweepsim.engine.jit_notice import compile_notice


def test_notice_printed_until_a_call_completes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "cache"))
    try:
        with compile_notice("engine"):
            raise RuntimeError("the kernel failed")
    except RuntimeError:
        pass
    err = capsys.readouterr().err
    assert "compiling the engine kernel" in err and "ready" not in err
    with compile_notice("engine"):  # the failed call did not mark the cache
        pass
    err = capsys.readouterr().err
    assert "compiling the engine kernel" in err and "engine kernel ready after" in err
    with compile_notice("engine"):
        pass
    assert capsys.readouterr().err == ""
    with compile_notice("sweep"):  # each kernel has its own marker
        pass
    assert "compiling the sweep kernel" in capsys.readouterr().err


def test_unwritable_cache_only_repeats_the_notice(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(blocker / "cache"))  # cannot be created
    for _ in range(2):
        with compile_notice("engine"):
            pass
        assert "compiling the engine kernel" in capsys.readouterr().err
