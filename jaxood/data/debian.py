"""Files from Debian packages: installed, cached, or fetched without root.

``package_folder`` finds a folder a Debian package installs (``/usr/share/...``) in
the system, then in a cache directory, and otherwise downloads the package with
``apt-get download`` and unpacks it there with ``dpkg -x`` (no root needed, unless
apt's package lists are missing: then ``apt-get update`` runs when we are root, as
on a fresh machine). The cache copy is moved into place only when complete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from jaxood.data.errors import SourceMissingError


def install_hint(package: str) -> str:
    """The commands that install ``package`` with or without root."""
    return (
        f"`sudo apt-get update && sudo apt-get install {package}` (or, without root, "
        f"`apt-get download {package}` and `dpkg -x {package}_*.deb DIR`)"
    )


def fetch(package: str, folder: str, dest: Path) -> Path:
    """Downloads ``package``, unpacks it and moves its ``folder`` to ``dest``.

    Args:
        package: the Debian package name.
        folder: the folder to keep, relative to ``/`` (``usr/share/...``).
        dest: where the folder ends up (its parent is created).

    Raises:
        SourceMissingError: apt-get or dpkg are missing, the download failed or the
            package has no such folder; the message names the package.
    """
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise SourceMissingError(
            f"jaxood needs files of the Debian package {package}, but apt-get/dpkg "
            f"are not available here. Fix: {install_hint(package)}."
        )
    with tempfile.TemporaryDirectory() as tmp:

        def download() -> subprocess.CompletedProcess:
            return subprocess.run(
                ["apt-get", "download", package],
                cwd=tmp,
                capture_output=True,
                text=True,
            )

        result = download()
        if result.returncode != 0 and os.geteuid() == 0:
            subprocess.run(
                ["apt-get", "update", "-qq"], capture_output=True, check=False
            )
            result = download()
        if result.returncode != 0:
            raise SourceMissingError(
                f"`apt-get download {package}` failed "
                f"({result.stderr.strip()[-300:]}). Fix: {install_hint(package)}."
            )
        (deb,) = Path(tmp).glob("*.deb")
        unpacked = Path(tmp) / "root"
        subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True)
        found = unpacked / folder
        if not found.is_dir():
            raise SourceMissingError(
                f"{deb.name} has no folder /{folder}. Fix: {install_hint(package)}."
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=dest.parent))
        shutil.move(str(found), staging / "folder")
        os.replace(staging / "folder", dest)
        staging.rmdir()
    return dest


def package_folder(
    package: str,
    folder: str,
    cache_dir: Path | None,
    *,
    allow_apt: bool = True,
    is_complete: Callable[[Path], bool] = Path.is_dir,
) -> Path:
    """The installed ``/folder`` of ``package``, else its cached copy, else fetched.

    Args:
        package: the Debian package name.
        folder: what it installs, relative to ``/`` (``usr/share/...``).
        cache_dir: holds fetched copies as ``cache_dir/package/folder``.
        allow_apt: fetch with :func:`fetch` when neither copy is there.
        is_complete: whether a found folder holds what we need.

    Raises:
        SourceMissingError: not installed, not cached and not fetchable.
    """
    system = Path("/") / folder
    if is_complete(system):
        return system
    if cache_dir is not None:
        cached = cache_dir / package / folder
        if is_complete(cached):
            return cached
        if allow_apt:
            found = fetch(package, folder, cached)
            if is_complete(found):
                return found
            raise SourceMissingError(
                f"The package {package} did not hold the expected files in "
                f"/{folder}. Fix: {install_hint(package)}."
            )
    raise SourceMissingError(
        f"The files of the Debian package {package} (/{folder}) are not installed. "
        f"Fix: {install_hint(package)}."
    )
