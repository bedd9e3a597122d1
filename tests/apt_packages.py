"""Debian packages the tests' real components come from, installed when missing.

:func:`ensure` finds a program; when it is missing it installs its Debian package with
``apt-get install -y`` if this process runs as root (as CI does), and otherwise fails
with a message naming the package. Used by ``tests/redis_server.py``,
``tests/browser.py`` and ``tests/prometheus_server.py``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

__all__ = ["ensure"]


def ensure(package: str, find: Callable[[], str | None], *, recommends: bool = True) -> str:
    """``find()``'s path, after ``apt-get install -y PACKAGE`` if it found nothing.

    ``recommends=False`` adds ``--no-install-recommends``. Raises ``RuntimeError``
    naming the package when it cannot install it, or when it installed but ``find``
    still finds nothing.
    """
    found = find()
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(
            f"{package} is not installed and this user cannot install it: run "
            f"`apt-get install -y {package}` (Debian package {package}) as root"
        )
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "install",
        "-y",
        "-qq",
        *([] if recommends else ["--no-install-recommends"]),
    ]
    for command in (["apt-get", "update", "-qq"], [*install, package]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 and command[1] == "install":
            raise RuntimeError(
                f"`apt-get install -y {package}` failed ({done.returncode}): "
                f"{done.stderr.strip()[-500:]}"
            )
    found = find()
    if found is None:
        raise RuntimeError(f"apt-get installed {package} but its program is not there")
    return found
