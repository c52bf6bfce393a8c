"""Find the Odoo 18.0 this project runs on, without ever downloading or building one.

Looks at ``ODOO_PATH`` (an Odoo 18.0 source tree holding ``odoo-bin``) first, then at an
``odoo`` package the Python running this file can import (found without importing it, so a tree
whose dependencies are missing is still found). Prints shell assignments (``ODOO_ROOT``,
``ODOO_BIN``, ``ODOO_ADDONS_PATH``) for ``eval``, or explains what is missing and exits with
status 3::

    env=$(python3 tools/odoo_env.py) && eval "$env"

It also says whether that Odoo runs in a given Python with its dependencies
(:func:`missing_dependencies`), from Odoo's own ``requirements.txt`` as amended by
``tools/odoo-overrides.txt`` (see :func:`overrides`). ``tools/bootstrap.py`` builds on it.
Standard library only: it runs before anything is installed.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WANTED_SERIES = "18.0"
OVERRIDES_FILE = REPO / "tools" / "odoo-overrides.txt"
#: Addons from PyPI wheels (OCA's queue_job), installed by tools/bootstrap.py with ``pip --target``:
#: the wheels put them in ``odoo/addons`` under it. Git-ignored.
WHEEL_ADDONS = REPO / ".addons"
# Imported to tell "Odoo runs here" from "Odoo's files are here": the server, HTTP and CLI layers.
PROBE = "import odoo.cli, odoo.service.server, odoo.http"

MISSING = ("Odoo 18.0 was not found: set ODOO_PATH to an Odoo 18.0 source tree (odoo-bin, odoo/, addons/), or make "
           "`odoo` importable by {python} (pip install -e /path/to/odoo, or a .pth file naming the tree); this "
           "project never downloads, vendors or builds Odoo.")


class OdooNotFound(SystemExit):
    """No usable Odoo 18.0: the message says what to do (exit status 3)."""

    def __init__(self, message):
        sys.stderr.write(message if message.endswith("\n") else message + "\n")
        super().__init__(3)


def _from_odoo_path():
    value = os.environ.get("ODOO_PATH")
    if not value:
        return None
    root = Path(value).expanduser().resolve()
    if not (root / "odoo" / "__init__.py").is_file():
        raise OdooNotFound(f"ODOO_PATH={value} is not an Odoo source tree (no odoo/__init__.py there).")
    return root


def _from_import(python):
    """The tree holding the ``odoo`` package ``python`` would import (found, not imported)."""
    probe = subprocess.run(
        [python, "-c", "import importlib.util as u; s = u.find_spec('odoo'); print(s.origin if s else '')"],
        capture_output=True, text=True, cwd="/", check=False,
    )
    origin = probe.stdout.strip().splitlines()[-1] if probe.stdout.strip() else ""
    if probe.returncode != 0 or not origin.endswith("__init__.py"):
        return None
    return Path(origin).resolve().parent.parent


def _series(root):
    scope = {}
    exec((root / "odoo" / "release.py").read_text(), scope)  # noqa: S102 - Odoo's own version file
    return scope.get("serie") or scope.get("series")


def python_bounds(root):
    """Odoo's ``(MIN_PY_VERSION, MAX_PY_VERSION)`` as tuples (``None`` where the tree says nothing)."""
    text = (root / "odoo" / "__init__.py").read_text()
    found = [re.search(rf"^{name}\s*=\s*\(([\d,\s]+)\)", text, re.M) for name in ("MIN_PY_VERSION", "MAX_PY_VERSION")]
    return tuple(tuple(int(n) for n in m.group(1).split(",") if n.strip()) if m else None for m in found)


def find_root(python=None):
    """The Odoo 18.0 source tree to use; raises :class:`OdooNotFound` (a ``SystemExit``) otherwise."""
    python = python or sys.executable
    root = _from_odoo_path() or _from_import(python)
    if root is None:
        raise OdooNotFound(MISSING.format(python=python))
    series = _series(root)
    if series != WANTED_SERIES:
        raise OdooNotFound(f"Odoo at {root} is {series}; this addon needs {WANTED_SERIES} (set ODOO_PATH to an "
                           f"Odoo {WANTED_SERIES} tree).")
    return root


def command(root, python=None):
    """How to run Odoo's server with ``python``: ``[python, <root>/odoo-bin]``."""
    python = python or sys.executable
    odoo_bin = root / "odoo-bin"
    return [python, str(odoo_bin)] if odoo_bin.is_file() else [python, "-m", "odoo"]


def wheel_addons_dir():
    """The folder of the addons installed from wheels (``.addons/odoo/addons``)."""
    return WHEEL_ADDONS / "odoo" / "addons"


def addons_path(root):
    """Odoo's addons folders plus this repository (which holds the addons and the sandbox), and the
    addons installed from wheels when there are some."""
    addons = [p for p in (root / "addons", root / "odoo" / "addons") if p.is_dir()]
    addons.append(REPO)
    if wheel_addons_dir().is_dir():
        addons.append(wheel_addons_dir())
    return ",".join(str(p) for p in addons)


def locate():
    """Return (root, odoo_bin command list, addons path) for this Python, or exit with a clear message."""
    root = find_root()
    return root, command(root), addons_path(root)


# ---------------------------------------------------------------- Odoo's own requirements
def overrides(path=OVERRIDES_FILE):
    """``({package: replacement requirement or None}, [added requirements])`` from ``tools/odoo-overrides.txt``."""
    replaced, added = {}, []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("+"):
            added.append(line[1:].strip())
        elif line:
            name, _, replacement = (part.strip() for part in line.partition("->"))
            replaced[canonical(name)] = replacement or None
    return replaced, added


def canonical(name):
    """A distribution name as pip compares them (``Babel`` = ``babel``, ``python_ldap`` = ``python-ldap``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(line):
    return canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line).group(1))


def marker_applies(marker, version=None, platform=None):
    """Evaluate the simple environment markers of Odoo's file (``python_version``, ``sys_platform``
    compared with ``==  != < <= > >=``, joined by ``and``/``or``)."""
    version = version or sys.version_info[:2]
    platform = platform or sys.platform

    def clause(text):
        match = re.fullmatch(r"\s*(python_version|sys_platform)\s*(==|!=|<=|>=|<|>)\s*['\"]([^'\"]*)['\"]\s*", text)
        if not match:
            raise ValueError(f"unsupported requirement marker: {text!r}")
        var, op, value = match.groups()
        left, right = ((tuple(version), tuple(int(n) for n in value.split("."))) if var == "python_version"
                       else (platform, value))
        return {"==": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
                ">": left > right, ">=": left >= right}[op]

    return any(all(clause(part) for part in alternative.split(" and ")) for alternative in marker.split(" or "))


def requirement_lines(root):
    """Odoo's ``requirements.txt`` lines (comments dropped, markers kept)."""
    path = root / "requirements.txt"
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def install_lines(root):
    """What to give pip for Odoo: its own lines, with the overridden packages replaced or left out,
    and the added ones."""
    replaced, added = overrides()
    kept = [line for line in requirement_lines(root) if _requirement_name(line) not in replaced]
    return kept + sorted({r for r in replaced.values() if r}) + added


def missing_dependencies(root):
    """Names of Odoo's requirements (and the added ones) that this Python lacks, by name: Odoo's pins
    are not enforced, an override's replacement counts as the package it replaces, and left-out ones
    are not asked."""
    from importlib import metadata

    replaced, added = overrides()
    missing = []
    for line in requirement_lines(root) + added:
        requirement, _, marker = line.partition(";")
        name = _requirement_name(requirement)
        if (marker.strip() and not marker_applies(marker)) or (name in replaced and not replaced[name]):
            continue
        names = {name} | ({_requirement_name(replaced[name])} if name in replaced else set())
        if not any(_installed(metadata, n) for n in names) and name not in missing:
            missing.append(name)
    return missing


def _installed(metadata, name):
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def runs_in(python, root):
    """``(True, "")`` when ``python`` imports Odoo's server from ``root``, else ``(False, last error line)``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    probe = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, cwd="/", env=env, check=False)
    lines = probe.stderr.strip().splitlines()
    return probe.returncode == 0, (lines[-1] if lines else "")


def main():
    root, odoo_bin, addons = locate()
    print(f"ODOO_ROOT={shlex.quote(str(root))}")
    print(f"ODOO_BIN={shlex.quote(' '.join(shlex.quote(c) for c in odoo_bin))}")
    print(f"ODOO_ADDONS_PATH={shlex.quote(addons)}")


if __name__ == "__main__":
    main()
