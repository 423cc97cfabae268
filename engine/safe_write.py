"""Writing the user's files: the one place for the rules every path the user gives obeys.

* Nothing that exists is replaced unless the user asked (`overwrite`, the CLI's `-y`), and an input
  is never an output, not even then (`check_target`).
* A file appears at its name only when complete: it is written to a hidden temporary file in the
  same folder and renamed into place (`temp_path` + `publish`, or `atomic_write`); without
  `overwrite` the rename refuses to replace a file that appeared meanwhile.
* A temporary file is removed when its run fails or stops. After a run that could not clean up
  (SIGKILL, power loss) the name says whose it was: `.<stem>.ve-tmp-<host>-<pid>-<random><suffix>`.
  Every later `temp_path` in that folder removes the ones whose process (on this host) has ended.
  (A process id the system has since given to another process keeps its file until that one ends.)
* A name chosen for the user (the kept partial video) is never one that exists or is protected
  (`free_name`).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Iterable

import psutil

from .errors import InputError

log = logging.getLogger(__name__)

_TAG = ".ve-tmp-"
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_TEMP_RE = re.compile(r"^\..*\.ve-tmp-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{8}(\.[^.]*)?$")
_STEM_MAX = 64  # characters of the final name kept in a temporary name (a long name must still fit)


class TargetError(InputError):
    """A path the user gave cannot be written (exists, is an input, is a folder...)."""


def same_file(a, b) -> bool:
    """Do two paths name the same file (hard links and symlinks included), existing or not?"""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def check_target(path, *, overwrite: bool, protect: Iterable = (), what: str = "output") -> Path:
    """`path` as a Path, if a run may write it: not a protected path (the inputs), not a folder, and
    not an existing file unless `overwrite`. Raises TargetError with what to do."""
    p = Path(os.fspath(path))
    for other in protect:
        if other is not None and same_file(p, other):
            raise TargetError(f"the {what} '{p}' is the input file '{other}'; choose another name "
                              "(an input is never overwritten, not even with -y)")
    if p.is_dir():
        raise TargetError(f"the {what} '{p}' is a directory; give a file name inside it")
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise TargetError(f"the {what} file '{p}' already exists; choose another name, or pass -y to replace it")
    return p


def sweep(folder) -> list[Path]:
    """Remove the temporary files in `folder` left by processes of this host that have ended."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _TEMP_RE.match(name)
        if m is None or m["host"] != _HOST or psutil.pid_exists(int(m["pid"])):
            continue
        p = Path(folder) / name
        try:
            p.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.debug("could not remove the stale temporary file %s: %s", p, exc)
            continue
        removed.append(p)
        log.info("removed %s, the temporary file of a run that ended without cleaning up", p)
    return removed


def temp_path(final) -> Path:
    """Create an empty hidden temporary file next to `final` and return its path (after a `sweep`).

    It keeps `final`'s suffix, so a container format chosen by extension is the same."""
    final = Path(os.fspath(final))
    folder = final.parent if str(final.parent) else Path(".")
    sweep(folder)
    suffix = final.suffix if len(final.suffix) <= 16 else ""
    stem = final.name[:len(final.name) - len(suffix)][:_STEM_MAX]
    for _ in range(100):
        tmp = folder / f".{stem}{_TAG}{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # normal permissions, unlike mkstemp
        except FileExistsError:
            continue
        except OSError as exc:
            raise TargetError(f"cannot write into the folder '{folder}' ({exc.strerror}); choose a writable folder") \
                from None
        os.close(fd)
        return tmp
    raise TargetError(f"could not create a temporary file next to '{final}'")


def publish(tmp, final, *, overwrite: bool) -> None:
    """Rename the complete temporary file onto `final`; without `overwrite`, never over an existing file
    (FileExistsError, and `tmp` stays)."""
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # atomic and refuses an existing target
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(final):  # a file system without hard links (FAT, some network shares)
            raise FileExistsError(errno.EEXIST, "File exists", str(final)) from None
        os.replace(tmp, final)
        return
    os.unlink(tmp)


def discard(tmp) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def free_name(path, protect: Iterable = ()) -> Path:
    """`path`, or `<stem>-2<suffix>`, `-3`... : the first that neither exists nor is a protected path."""
    p = Path(os.fspath(path))
    protect = [x for x in protect if x is not None]
    for k in range(1, 10000):
        cand = p if k == 1 else p.with_name(f"{p.stem}-{k}{p.suffix}")
        if not os.path.lexists(cand) and not any(same_file(cand, x) for x in protect):
            return cand
    raise TargetError(f"no free file name like '{p}'")


@contextlib.contextmanager
def atomic_write(path, *, overwrite: bool, mode: str = "w", **open_kw):
    """`with atomic_write(p, overwrite=...) as f:` writes p completely or not at all."""
    tmp = temp_path(path)
    try:
        with open(tmp, mode, **open_kw) as f:
            yield f
        publish(tmp, path, overwrite=overwrite)
    except BaseException:
        discard(tmp)
        raise
