"""Generated traces on disk. Run configs name a spec instead of a file; ``resolve_spec`` generates it once
and caches the Parquet file as ``<cache_dir()>/<content hash>.parquet`` (``$SWEEPSIM_TRACE_CACHE``, else
``$XDG_CACHE_HOME/sweepsim/traces``, else ``~/.cache/sweepsim/traces``; the spec is stored in the file's metadata, see ``spec_of``), with a sidecar
``<hash>.parquet.sha256`` holding the file's SHA-256: a cached file whose digest does not match (or without a
sidecar) is regenerated with a warning. Under ``with no_generation():`` (``sweepsim grid --dry-run``),
``resolve_spec`` validates the spec and its size but only returns the path it would use, writing nothing.

Parsing a run config never generates anything: ``spec_path`` only names the file; ``ensure_trace`` (when a run
or sweep starts) generates it.
"""
import contextvars
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sweepsim.atomic import atomic_write
from sweepsim.errors import InputError, check_writable
from sweepsim.workload.files import trace_table, write_trace
from sweepsim.workload.sampling import check_limit, generate_columns, max_requests
from sweepsim.workload.spec import AZURE_2023, TraceSpec, toml_field
from sweepsim.workload.trace import Trace


#: bumped whenever generation changes, so that cached traces are regenerated
#: (2: with both count and duration, a count the duration cannot reach no longer sets the number of draws;
#: 3: serving columns batch_id, sla, regions; dev workloads; the diurnal profile)
GENERATOR_VERSION = 3


CACHE_ENV = "SWEEPSIM_TRACE_CACHE"


@lru_cache(maxsize=4096)
def _digest(path: str, mtime_ns: int, size: int, inode: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path) -> str:
    """SHA-256 (hex) of a file's bytes, read once per (path, mtime, size, inode) in a process: a file replaced
    atomically (new inode) is read again even within the file system's timestamp resolution."""
    st = Path(path).stat()
    return _digest(str(path), st.st_mtime_ns, st.st_size, st.st_ino)


def spec_hash(spec: TraceSpec) -> str:
    """Content hash of a spec: the spec, the generator version and the bytes of every input file."""
    inputs = []
    for a in spec.apps:
        if a.sizes in AZURE_2023:
            inputs.append(file_digest(AZURE_2023[a.sizes]))
        elif a.sizes.startswith("trace:"):
            inputs.append(file_digest(a.sizes[6:]))
        if a.profile:
            inputs.append(file_digest(a.profile))
    payload = json.dumps({"version": GENERATOR_VERSION, "spec": spec.to_dict(), "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def cache_dir() -> Path:
    """Where generated traces are cached: ``$SWEEPSIM_TRACE_CACHE``, else ``$XDG_CACHE_HOME/sweepsim/traces``,
    else ``~/.cache/sweepsim/traces`` (never inside the installed package)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sweepsim" / "traces"


_NO_GENERATION = contextvars.ContextVar("sweepsim_tracegen_no_generation", default=False)


@contextmanager
def no_generation():
    """Within ``with no_generation():`` (e.g. around ``sweepsim grid --dry-run``'s validation),
    ``resolve_spec`` validates specs (keys, values, the size limit) and returns the cache path it would use,
    but generates and writes nothing (the path may not exist)."""
    token = _NO_GENERATION.set(True)
    try:
        yield
    finally:
        _NO_GENERATION.reset(token)


def digest_path(path) -> Path:
    """The sidecar holding the SHA-256 of a cached trace: ``<hash>.parquet.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _cached_ok(path: Path) -> bool:
    """The cached file matches the digest in its sidecar (``file_digest`` caches by path, mtime, size, inode: a
    sweep hashing the trace afterwards does not read it again)."""
    try:
        want = digest_path(path).read_text().split()[0]
        return file_digest(path) == want
    except (OSError, IndexError, UnicodeDecodeError):
        return False


def spec_path(spec: TraceSpec, src=None, fld=toml_field, limit=None) -> Path:
    """Where the spec's trace is cached (it may not exist yet), after checking the spec's size limit: no file
    is read or written, so parsing a run config that names a spec has no side effect."""
    check_limit(spec, src, fld, limit)
    return cache_dir() / f"{spec_hash(spec)}.parquet"


def ensure_trace(cfg) -> Path:
    """The trace file of a run config, generating (and caching) it first if the config names a generator
    spec: call it when a run or a sweep starts, before reading ``cfg.trace``."""
    if cfg.trace_spec is not None:
        return resolve_spec(cfg.trace_spec, cfg.source)
    return Path(cfg.trace)


def load_run_trace(cfg) -> Trace:
    """``load_trace`` of a run config's trace, generated first if needed (``ensure_trace``)."""
    from sweepsim.workload.trace import load_trace
    return load_trace(ensure_trace(cfg))


def resolve_spec(spec: TraceSpec, src=None, fld=toml_field, limit=None) -> Path:
    """Path of the spec's trace, generated on first use and cached by content hash in ``cache_dir()``.

    A cached file is reused only if its sidecar ``<hash>.parquet.sha256`` matches its SHA-256; otherwise it is
    regenerated (atomically, with a warning on stderr). Specs over ``limit`` requests (default
    ``max_requests()``) are refused before anything is generated. Under ``no_generation()`` nothing is
    generated or written: the spec is validated and the path returned."""
    path = spec_path(spec, src, fld, limit)
    limit = max_requests() if limit is None else int(limit)
    if _NO_GENERATION.get():
        return path
    present = path.exists()
    if present and _cached_ok(path):
        return path
    check_writable(path.parent, CACHE_ENV, is_dir=True)
    cols = generate_columns(spec, src, fld, limit)
    if len(cols["arrival_timestamp"]) == 0:
        raise InputError(src, fld("duration"), "no request arrives within the duration; raise it or the rate")
    try:
        write_trace(trace_table(cols, spec), path)
        del cols
        digest = file_digest(path)
        atomic_write(digest_path(path), lambda tmp: Path(tmp).write_text(f"{digest}  {path.name}\n"))
    except OSError as e:
        raise InputError(path, CACHE_ENV, f"cannot write the cached trace: {e.strerror or e}") from None
    if present:
        print(f"warning: {path}: cached trace was corrupt or incomplete; regenerated", file=sys.stderr)
    return path
