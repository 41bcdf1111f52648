"""User-facing errors: one clear line naming the file, the field and the allowed values (CLI exit code 2)."""


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


def check_output_path(path, suffixes, field, kind="output"):
    """An output file path whose extension is one of ``suffixes`` (the format) and that is not a directory."""
    from pathlib import Path
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InputError(path, field, f"unknown {kind} format {path.suffix or '(no extension)'!r}; {allowed(suffixes)}")
    if path.is_dir():
        raise InputError(path, field, "is a directory")
    return path
