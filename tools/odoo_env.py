"""Find the Odoo 18.0 this project runs on, without ever downloading or building one.

Looks at ``ODOO_PATH`` (an Odoo 18.0 source tree holding ``odoo-bin``) first, then at an
importable ``odoo`` package. Prints shell assignments (``ODOO_ROOT``, ``ODOO_BIN``,
``ODOO_ADDONS_PATH``) for ``eval``, or explains what is missing and exits with status 3.

    eval "$(python3 tools/odoo_env.py)"
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WANTED_SERIES = "18.0"

MISSING = """\
Odoo 18.0 was not found, so nothing can run.
This project never downloads, vendors or builds Odoo; point it at yours, either way:
  * export ODOO_PATH=/path/to/odoo   (an Odoo 18.0 source tree: odoo-bin, odoo/, addons/)
  * or make `odoo` importable by {python}, e.g. `pip install -e /path/to/odoo`
    or a .pth file in site-packages naming the source tree.
Odoo's own Python requirements must be installed too (pip install -r /path/to/odoo/requirements.txt).
"""


def _from_odoo_path():
    value = os.environ.get("ODOO_PATH")
    if not value:
        return None
    root = Path(value).expanduser().resolve()
    if not (root / "odoo" / "__init__.py").is_file():
        sys.exit(f"ODOO_PATH={value} is not an Odoo source tree (no odoo/__init__.py there).")
    return root


def _from_import():
    probe = subprocess.run(
        [sys.executable, "-c", "import odoo, os; print(os.path.dirname(odoo.__file__))"],
        capture_output=True, text=True, cwd="/",
    )
    if probe.returncode != 0 or not probe.stdout.strip():
        return None
    return Path(probe.stdout.strip().splitlines()[-1]).resolve().parent


def _series(root):
    scope = {}
    exec((root / "odoo" / "release.py").read_text(), scope)  # noqa: S102 - Odoo's own version file
    return scope.get("serie") or scope.get("series")


def locate():
    """Return (root, odoo_bin command list, addons path) or exit with a clear message."""
    root = _from_odoo_path() or _from_import()
    if root is None:
        sys.stderr.write(MISSING.format(python=sys.executable))
        sys.exit(3)
    series = _series(root)
    if series != WANTED_SERIES:
        sys.exit(f"Odoo at {root} is {series}; this addon needs {WANTED_SERIES}.")
    odoo_bin = root / "odoo-bin"
    command = [sys.executable, str(odoo_bin)] if odoo_bin.is_file() else [sys.executable, "-m", "odoo"]
    addons = [p for p in (root / "addons", root / "odoo" / "addons") if p.is_dir()]
    addons.append(REPO)
    return root, command, ",".join(str(p) for p in addons)


def main():
    root, command, addons = locate()
    print(f"ODOO_ROOT={shlex.quote(str(root))}")
    print(f"ODOO_BIN={shlex.quote(' '.join(shlex.quote(c) for c in command))}")
    print(f"ODOO_ADDONS_PATH={shlex.quote(addons)}")


if __name__ == "__main__":
    main()
