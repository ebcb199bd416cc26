"""What a report must record to be rerun: package versions and the machine it ran on."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("flwr", "torch", "opacus", "ray", "scikit-learn", "numpy", "pandas", "scipy", "seaborn", "matplotlib", "jinja2")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def machine() -> str:
    return f"{platform.system()} {platform.machine()}, {platform.processor() or 'unknown CPU'}"
