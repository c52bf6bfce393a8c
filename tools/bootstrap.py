"""Set up what bin/test and bin/demo need, idempotently, and say which Python runs Odoo.

    setup=$("$PYTHON" tools/bootstrap.py --commands psql,dropdb) || exit $?
    eval "$setup"       # PYTHON, ODOO_ROOT, ODOO_PATH (exported), ODOO_ADDONS_PATH, ODOO_BIN (an array)

1. Finds Odoo 18.0 (``ODOO_PATH``, else the ``odoo`` this Python can import: ``tools/odoo_env.py``).
2. Checks the command-line tools asked for and PostgreSQL (``PGHOST``/``PGPORT``/``PGUSER``):
   reachable, a role other than ``postgres`` (Odoo refuses it), allowed to create databases.
3. Chooses the Python:
   * this Python, when it runs that Odoo with Odoo's dependencies and is not a system Python
     marked "externally managed" (PEP 668): only our ``requirements.txt`` is pip-installed into
     it, and only when the file changed since the last run (a stamp in ``.cache/bootstrap/``);
   * otherwise the project's virtual environment ``.venv/``, made from this Python, holding
     Odoo's own ``requirements.txt`` amended by ``tools/odoo-overrides.txt`` plus ours, and a
     ``.pth`` file naming the Odoo tree. It is reused while those files and this Python are the
     same (a stamp in ``.venv/``), so a second run costs well under a second.
4. Installs the Odoo addons that come from PyPI (OCA's ``queue_job``, pinned in
   ``sage_business_cloud_queue/requirements.txt``) into ``.addons/`` with ``--no-deps``, once per
   change of that file (a stamp in ``.addons/``); ``ODOO_ADDONS_PATH`` then lists them.

Every failure is one line on stderr and a non-zero exit. Progress goes to stderr, the assignments
to stdout. ``SAGE_SKIP_PIP=1`` checks and chooses but installs nothing. Standard library only.
"""

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import odoo_env  # noqa: E402 - a sibling file, importable before anything is installed

REPO = odoo_env.REPO
REQUIREMENTS = REPO / "requirements.txt"
#: Odoo addons from PyPI (OCA's queue_job, for sage_business_cloud_queue): ``pip --no-deps --target``.
ADDON_REQUIREMENTS = REPO / "sage_business_cloud_queue" / "requirements.txt"
VENV = REPO / ".venv"
STAMPS = REPO / ".cache" / "bootstrap"
# Bump when the way .venv is built changes, so existing ones are brought up to date.
VENV_FORMAT = 1
INSTALL_HINTS = {"psql": "PostgreSQL's client tools (Debian/Ubuntu: apt-get install postgresql-client)",
                 "dropdb": "PostgreSQL's client tools (Debian/Ubuntu: apt-get install postgresql-client)",
                 "curl": "curl (Debian/Ubuntu: apt-get install curl)"}


class Failure(SystemExit):
    """A one-line reason to stop (exit status 1)."""

    def __init__(self, message):
        sys.stderr.write(f"bootstrap: {message}\n")
        super().__init__(1)


def say(message):
    sys.stderr.write(f"== {message}\n")
    sys.stderr.flush()


def digest(*parts):
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


# ---------------------------------------------------------------- checks
def check_python(root):
    low, high = odoo_env.python_bounds(root)
    here = sys.version_info[:2]
    version = ".".join(map(str, here))
    if low and here < low:
        raise Failure(f"Odoo 18.0 needs Python {'.'.join(map(str, low))} or later; {sys.executable} is {version} "
                      f"(set PYTHON=/path/to/python3.12, for example).")
    if high and here > high:
        say(f"warning: Odoo 18.0 is made for Python {'.'.join(map(str, low))} to {'.'.join(map(str, high))}; "
            f"{sys.executable} is {version} (set PYTHON to another one if something fails)")


def check_commands(names):
    for name in names:
        if not shutil.which(name):
            raise Failure(f"`{name}` not found on PATH: install {INSTALL_HINTS.get(name, name)}.")


def check_postgres():
    host, port = os.environ.get("PGHOST", "127.0.0.1"), os.environ.get("PGPORT", "5432")
    user = os.environ.get("PGUSER") or os.environ.get("USER") or ""
    where = f"PostgreSQL at {host}:{port}"
    if user == "postgres":
        raise Failure("Odoo refuses to connect as the PostgreSQL role `postgres`: set PGUSER to another role "
                      "allowed to create databases (as a superuser: createuser --createdb <name>).")
    check_commands(["psql"])
    env = dict(os.environ, PGHOST=host, PGPORT=port, PGCONNECT_TIMEOUT=os.environ.get("PGCONNECT_TIMEOUT", "5"))
    if user:
        env["PGUSER"] = user
    sql = "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
    try:
        answer = subprocess.run(["psql", "-X", "-w", "-d", "template1", "-Atc", sql], env=env,
                                capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        raise Failure(f"{where} does not answer (30 s): start it, or set PGHOST/PGPORT.") from None
    if answer.returncode != 0:
        error = (answer.stderr.strip().splitlines() or ["no answer"])[0]
        error = error.split("FATAL:", 1)[-1].replace("psql: error:", "").strip()
        if "does not exist" in error and "role" in error:
            raise Failure(f"{where} has no role `{user}`: create it (as a superuser: createuser --createdb {user}) "
                          f"or set PGUSER.")
        if "password" in error:
            raise Failure(f"{where} wants a password for `{user}`: set PGPASSWORD or use ~/.pgpass ({error}).")
        raise Failure(f"{where} is not reachable as `{user}`: {error} (start it, or set PGHOST/PGPORT/PGUSER).")
    if answer.stdout.strip() != "t":
        raise Failure(f"the PostgreSQL role `{user}` may not create databases: as a superuser, "
                      f"ALTER ROLE \"{user}\" CREATEDB; or set PGUSER to a role that may.")


def externally_managed():
    """PEP 668: a system Python (not a virtual environment) whose distributor forbids pip installs."""
    marker = Path(sysconfig.get_path("stdlib")) / "EXTERNALLY-MANAGED"
    return sys.prefix == sys.base_prefix and marker.is_file()


def has_pip(python):
    return subprocess.run([python, "-m", "pip", "--version"], capture_output=True, check=False).returncode == 0


def pip_install(python, *arguments, what, files=True):
    """``pip install`` the requirement files (or, ``files=False``, the plain arguments) into ``python``."""
    os.environ.setdefault("PIP_ROOT_USER_ACTION", "ignore")  # pip's warning when run as root (CI, containers)
    command = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--progress-bar", "off"]
    for argument in arguments:
        command += ["-r", str(argument)] if files else [argument]
    if subprocess.run(command, check=False).returncode != 0:
        raise Failure(f"pip could not install {what} into {python} (pip's messages above); fix that and run again.")


def _read_stamp(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_stamp(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")


# ---------------------------------------------------------------- this Python
def reasons_not_here(root):
    """Why this Python cannot run Odoo as it is (empty: it can), without importing anything heavy."""
    if externally_managed():
        return [f"{sys.executable} is a system Python that must not be pip-installed into (externally managed)"]
    missing = odoo_env.missing_dependencies(root)
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        return [f"{sys.executable} lacks Odoo's requirements ({shown})"]
    return []


def use_this_python(root, skip_pip):
    """Our requirements into this Python unless nothing changed; returns it, or ``None`` if Odoo does
    not import here after all (then .venv is the way)."""
    stamp_path = STAMPS / f"python-{digest(sys.executable)[:12]}.json"
    stamp = {"python": sys.executable, "version": sys.version, "odoo": str(root),
             "odoo_requirements": digest(*odoo_env.requirement_lines(root)),
             "requirements": digest(REQUIREMENTS.read_text())}
    if _read_stamp(stamp_path) == stamp:
        say(f"Python: {sys.executable} (Odoo's and our requirements unchanged since the last run)")
        return sys.executable
    ok, error = odoo_env.runs_in(sys.executable, root)
    if not ok:
        say(f"Python: Odoo does not import in {sys.executable} ({error})")
        return None
    if skip_pip:
        say(f"Python: {sys.executable} (SAGE_SKIP_PIP=1: requirements.txt not installed)")
        return sys.executable
    if not has_pip(sys.executable):
        say(f"Python: {sys.executable} runs Odoo but has no pip to install requirements.txt with")
        return None
    say(f"Python: {sys.executable} runs Odoo; installing requirements.txt into it")
    pip_install(sys.executable, REQUIREMENTS, what="requirements.txt")
    _write_stamp(stamp_path, stamp)
    return sys.executable


# ---------------------------------------------------------------- .venv
def venv_python():
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _site_packages():
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return VENV / ("Lib" if os.name == "nt" else f"lib/{version}") / "site-packages"


def use_venv(root, skip_pip):
    """Create or reuse ``.venv`` with Odoo's requirements (amended) and ours; returns its Python."""
    python = venv_python()
    stamp_path = VENV / "sage-bootstrap.json"
    lines = odoo_env.install_lines(root)
    stamp = {"format": VENV_FORMAT, "base": sys.executable, "version": sys.version,
             "odoo_requirements": digest(*lines), "requirements": digest(REQUIREMENTS.read_text())}
    old = _read_stamp(stamp_path)
    fresh = not python.is_file() or old.get("version") != sys.version or old.get("base") != sys.executable
    if not fresh and old == stamp:
        _point_at(root)
        say(f"Python: {python.relative_to(REPO)} (unchanged since the last run)")
        return str(python)
    if skip_pip and not fresh:
        _point_at(root)
        say(f"Python: {python.relative_to(REPO)} (SAGE_SKIP_PIP=1: left as it is, although its requirements changed)")
        return str(python)
    if skip_pip:
        raise Failure("SAGE_SKIP_PIP=1, but Odoo needs a virtual environment .venv that is not built yet: "
                      "run once without SAGE_SKIP_PIP.")
    if fresh:
        say(f"Python: creating {VENV.relative_to(REPO)} with {sys.executable} (first time: a few minutes)")
        made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)],
                              capture_output=True, text=True, check=False)
        if made.returncode != 0 or not python.is_file():
            reason = (made.stderr.strip().splitlines() or ["no interpreter in it"])[-1]
            raise Failure(f"could not create {VENV} with {sys.executable} -m venv: {reason} "
                          "(Debian/Ubuntu: apt-get install python3-venv).")
        stamp_path.unlink(missing_ok=True)
        # A venv's pip is the one its Python shipped (old on stable distributions): a current one
        # builds the few source-only packages the modern way and reads today's wheel tags.
        pip_install(str(python), "--upgrade", "pip", what="a current pip", files=False)
    else:
        say(f"Python: bringing {VENV.relative_to(REPO)} up to date (requirements changed)")
    _point_at(root)
    odoo_file = VENV / "odoo-requirements.txt"
    odoo_file.write_text("# Odoo's requirements.txt amended by tools/odoo-overrides.txt (made by tools/bootstrap.py)\n"
                         + "\n".join(lines) + "\n")
    pip_install(str(python), odoo_file, REQUIREMENTS, what="Odoo's requirements and requirements.txt")
    ok, error = odoo_env.runs_in(str(python), root)
    if not ok:
        raise Failure(f"Odoo still does not import in {python}: {error}")
    _write_stamp(stamp_path, stamp)
    return str(python)


def _point_at(root):
    """A ``.pth`` file in .venv naming the Odoo tree, so ``import odoo`` works there."""
    pth = _site_packages() / "odoo-source.pth"
    if pth.parent.is_dir() and (not pth.is_file() or pth.read_text().strip() != str(root)):
        pth.write_text(f"{root}\n")


# ---------------------------------------------------------------- addons from wheels
def use_wheel_addons(python, skip_pip):
    """Install the addons of ``sage_business_cloud_queue/requirements.txt`` into ``.addons/``.

    Their wheels require Odoo itself (not installed from PyPI here), so they go in with
    ``--no-deps`` into a folder of their own, which ``odoo_env.addons_path`` then lists; redone
    only when that file (or the Python) changed since the last run (a stamp in ``.addons/``).
    """
    target = odoo_env.WHEEL_ADDONS
    stamp_path = target / "sage-bootstrap.json"
    if not ADDON_REQUIREMENTS.is_file():
        return
    stamp = {"python": python, "requirements": digest(ADDON_REQUIREMENTS.read_text())}
    if _read_stamp(stamp_path) == stamp and odoo_env.wheel_addons_dir().is_dir():
        say(f"Addons from wheels: {target.relative_to(REPO)} (unchanged since the last run)")
        return
    if skip_pip:
        state = "left as it is" if odoo_env.wheel_addons_dir().is_dir() else "not installed"
        say(f"Addons from wheels: SAGE_SKIP_PIP=1: {target.relative_to(REPO)} {state}")
        return
    say(f"Addons from wheels: installing {ADDON_REQUIREMENTS.relative_to(REPO)} into {target.relative_to(REPO)}")
    fresh = target.with_name(target.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    os.environ.setdefault("PIP_ROOT_USER_ACTION", "ignore")
    command = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--progress-bar", "off",
               "--no-deps", "--target", str(fresh), "-r", str(ADDON_REQUIREMENTS)]
    if subprocess.run(command, check=False).returncode != 0:
        shutil.rmtree(fresh, ignore_errors=True)
        raise Failure(f"pip could not install {ADDON_REQUIREMENTS.relative_to(REPO)} into {target} "
                      "(pip's messages above); fix that and run again.")
    shutil.rmtree(target, ignore_errors=True)
    fresh.rename(target)
    _write_stamp(stamp_path, stamp)


# ---------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", default="", help="comma-separated tools that must be on PATH")
    parser.add_argument("--no-postgres", action="store_true", help="do not check PostgreSQL")
    parser.add_argument("--print-python", action="store_true", help="print only the chosen Python's path")
    args = parser.parse_args(argv)
    skip_pip = bool(os.environ.get("SAGE_SKIP_PIP"))

    root = odoo_env.find_root()
    check_python(root)
    check_commands([name for name in args.commands.split(",") if name])
    if not args.no_postgres:
        check_postgres()

    why = reasons_not_here(root)
    python = None if why else use_this_python(root, skip_pip)
    if python is None:
        if why:
            say(f"Python: {why[0]}; using the project's .venv")
        python = use_venv(root, skip_pip)
    use_wheel_addons(python, skip_pip)

    if args.print_python:
        print(python)
        return
    values = {"PYTHON": python, "ODOO_ROOT": str(root), "ODOO_PATH": str(root),
              "ODOO_ADDONS_PATH": odoo_env.addons_path(root)}
    for name, value in values.items():
        print(f"{name}={shlex.quote(value)}")
    print(f"ODOO_BIN=({' '.join(shlex.quote(c) for c in odoo_env.command(root, python))})")
    print("export ODOO_PATH")


if __name__ == "__main__":
    main()
