"""User-facing errors: one clear line naming the file, the field and the allowed values (CLI exit code 2).

Output locations are checked before any work starts (``check_output_path`` for files, ``check_output_dir``
for directories): a path below a file, in a read-only or non-existent system directory fails in one line
instead of after a simulation.
"""
import os
import tempfile
from pathlib import Path


class InputError(Exception):
    """Bad configuration, trace or command-line input."""

    def __init__(self, source, field, message):
        self.source = str(source) if source is not None else None
        self.field = field
        self.message = message
        where = ": ".join(x for x in (self.source, field) if x)
        super().__init__(f"{where}: {message}" if where else message)


def allowed(values):
    """Format allowed values for an error message."""
    return "allowed: " + ", ".join(str(v) for v in values)


def choice(src, key, v, options):
    """``v`` if it is one of ``options`` (and of their type), else an InputError listing them."""
    if isinstance(v, (bool, dict, list)) or v not in options or type(v) is not type(options[0]):
        raise InputError(src, key, f"unknown value {v!r}; {allowed(options)}")
    return v


def check_input_file(path, field=None, what="file") -> Path:
    """An input file that exists and is a regular file: a directory, a device (/dev/zero) or a pipe would
    fail late or be read forever."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, field, f"{what} not found")
    if path.is_dir():
        raise InputError(path, field, f"is a directory, not a {what}")
    if not path.is_file():
        raise InputError(path, field, f"is not a regular file (devices and pipes are not accepted as {what}s)")
    return path


def read_toml(path, field=None, what="file") -> dict:
    """A TOML file's table; a missing or non-regular file, bad TOML or non-UTF-8 text is an InputError."""
    import tomllib
    path = check_input_file(path, field, what)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise InputError(path, field, f"invalid TOML: {e}") from None
    except UnicodeDecodeError:
        raise InputError(path, field, "invalid TOML: not UTF-8 text") from None


def read_parquet(path, field=None, columns=()):
    """A Parquet table written by sweepsim; a missing, damaged or foreign file (or one without ``columns``)
    is an InputError naming it."""
    import polars as pl
    path = check_input_file(path, field, "Parquet file")
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # polars and pyarrow raise many kinds for a damaged file
        raise InputError(path, field, f"cannot read (damaged, or not a Parquet file): "
                                      f"{(str(e).splitlines() or [type(e).__name__])[0][:200]}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(path, missing[0], f"missing column(s) {', '.join(missing)}: not a complete sweepsim output")
    return df


def check_writable(path, field, is_dir: bool) -> Path:
    """``path`` (a file, or a directory with ``is_dir``) can be created or replaced: the nearest existing
    ancestor is a directory in which a file can be created (probed with a temporary file that is removed at
    once, the directory's times restored), and an existing ``path`` has the right kind. Creates nothing."""
    path = Path(path)
    if path.exists():
        if is_dir and not path.is_dir():
            raise InputError(path, field, "is a file, not a directory")
        if not is_dir and path.is_dir():
            raise InputError(path, field, "is a directory")
        if not is_dir and not path.is_file():   # a device or a FIFO: an atomic rename would replace it
            raise InputError(path, field, "is not a regular file (a device or a pipe); give a file path")
    anc = path.absolute() if is_dir else path.absolute().parent
    while not anc.exists() and not anc.is_symlink():
        anc = anc.parent
    if not anc.is_dir():
        raise InputError(path, field, f"cannot be created: {anc} is not a directory")
    try:
        before = anc.stat()
        fd, tmp = tempfile.mkstemp(prefix=".sweepsim-probe-", dir=anc)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise InputError(path, field, f"cannot write in {anc}: {e.strerror or e}") from None
    try:  # leave the directory as it was (its times included)
        os.utime(anc, ns=(before.st_atime_ns, before.st_mtime_ns))
    except OSError:
        pass
    return path


def check_output_dir(path, field="--out") -> Path:
    """An output directory that exists or can be created (see ``check_writable``)."""
    return check_writable(path, field, is_dir=True)


def check_output_path(path, suffixes, field, kind="output"):
    """An output file path whose extension is one of ``suffixes`` (the format), that is not a directory and
    whose directory exists or can be created."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InputError(path, field, f"unknown {kind} format {path.suffix or '(no extension)'!r}; {allowed(suffixes)}")
    return check_writable(path, field, is_dir=False)
