"""Atomic file output: write a temporary file next to the target, then rename it over the target, so a
reader (or a killed process) never sees a partial file."""
import errno
import os
import tempfile
from pathlib import Path


def atomic_write(path, write) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it over ``path``. The file gets
    the usual permissions (0666 minus the umask), not mkstemp's 0600."""
    path = Path(path)
    if path.is_symlink():  # write where the link points (the link stays)
        path = Path(os.path.realpath(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, cannot be replaced by a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
