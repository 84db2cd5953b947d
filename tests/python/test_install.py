"""The package installs from its directory with Debian's pip and no network
(the commands of docs/python.md), and the installed copy imports in a fresh
interpreter and finds the library through XG2G_LIBRARY.

pip builds in place, so each install works on a copy of capi/python in a
temporary directory; the test also checks the source tree is left as it was.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import xg2g

SOURCE = pathlib.Path(__file__).resolve().parents[2] / "capi" / "python"

# What the fresh interpreter prints: where xg2g came from, and what it says.
PROBE = """
import json, xg2g
print(json.dumps({"file": xg2g.__file__, "version": xg2g.version(),
                  "library_version": list(xg2g.library_version()),
                  "memory_store": xg2g.Store("memory:").check().consistent}))
"""


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if "__pycache__" not in p.parts)


def _pip_env():
    env = dict(os.environ)
    # The copy must not be shadowed by the in-tree package the suite runs on.
    env.pop("PYTHONPATH", None)
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1",
               PIP_ROOT_USER_ACTION="ignore", PIP_NO_INPUT="1")
    return env


def _run(args, env, cwd):
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _copy_of_the_package(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns(
        "__pycache__", "build", "*.egg-info", ".gitignore"))
    return copy


@pytest.fixture
def library():
    path = os.environ.get("XG2G_LIBRARY")
    if not path:
        pytest.skip("XG2G_LIBRARY is not set (meson test sets it)")
    return path


@pytest.fixture
def pip_available():
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True,
                      check=False).returncode != 0:
        pytest.skip(f"{sys.executable} has no pip (Debian: python3-pip)")


def _probe(python, library, cwd, extra_path=None):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["XG2G_LIBRARY"] = library
    code = PROBE if extra_path is None else (
        f"import sys; sys.path.insert(0, {str(extra_path)!r})\n" + PROBE)
    return json.loads(_run([str(python), "-c", code], env, cwd).strip().splitlines()[-1])


def test_pip_install_target_works_offline_and_the_copy_imports(tmp_path, library,
                                                               pip_available):
    before = _tree(SOURCE)
    copy = _copy_of_the_package(tmp_path)
    target = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-index", "--no-build-isolation",
          "--no-deps", "--target", str(target), str(copy)], _pip_env(), tmp_path)

    installed = target / "xg2g"
    assert sorted(p.name for p in installed.iterdir() if p.name != "__pycache__") == [
        "__init__.py", "_ffi.py", "py.typed"]
    [dist_info] = list(target.glob("xg2g-*.dist-info"))
    metadata = (dist_info / "METADATA").read_text()
    assert "Name: xg2g" in metadata and "Requires-Python: >=3.9" in metadata

    # A fresh interpreter, away from the source tree, without PYTHONPATH.
    seen = _probe(sys.executable, library, tmp_path, extra_path=target)
    assert pathlib.Path(seen["file"]).resolve() == (installed / "__init__.py").resolve()
    assert seen["version"] == xg2g.version()
    assert tuple(seen["library_version"]) == xg2g.library_version()
    assert seen["memory_store"] is True
    assert _tree(SOURCE) == before, "the install left files in capi/python"


def test_a_venv_with_system_site_packages_installs_it_offline(tmp_path, library,
                                                              pip_available):
    if subprocess.run([sys.executable, "-c", "import ensurepip"], capture_output=True,
                      check=False).returncode != 0:
        pytest.skip(f"{sys.executable} cannot make a venv (Debian: python3-venv)")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], _pip_env(),
         tmp_path)
    python = venv / "bin" / "python"
    copy = _copy_of_the_package(tmp_path)
    _run([str(python), "-m", "pip", "install", "--no-index", "--no-build-isolation",
          str(copy)], _pip_env(), tmp_path)
    seen = _probe(python, library, tmp_path)
    assert pathlib.Path(seen["file"]).resolve().is_relative_to(venv.resolve())
    assert seen["version"] == xg2g.version()


def test_without_a_library_the_import_fails_naming_what_it_tried(tmp_path):
    env = dict(os.environ)
    env["XG2G_LIBRARY"] = str(tmp_path / "no-such-libxg2g.so")
    done = subprocess.run([sys.executable, "-c", "import xg2g"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "no-such-libxg2g.so" in done.stderr
