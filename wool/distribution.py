"""``wool.__version__``: read when first asked for, so importing wool on a worker costs nothing."""

from __future__ import annotations

from pathlib import Path

DISTRIBUTION = "wool-jupyter"
UNKNOWN = "0+unknown"


def version() -> str:
    """The installed distribution's version; else the source tree's pyproject.toml; else UNKNOWN.

    The fallbacks cover running from a checkout that was never installed
    (``PYTHONPATH=.``); ``UNKNOWN`` is a valid PEP 440 version that sorts
    below every release.
    """
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    import tomllib

    try:
        with (Path(__file__).resolve().parent.parent / "pyproject.toml").open("rb") as file:
            project = tomllib.load(file)["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return UNKNOWN
    if project.get("name") != DISTRIBUTION or not isinstance(project.get("version"), str):
        return UNKNOWN
    return str(project["version"])
