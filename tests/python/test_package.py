"""The package's own promises: every public class, method and function has a
docstring and complete type hints that resolve, the source stays within
Python 3.9's syntax, and the package is marked typed (PEP 561)."""
import ast
import dataclasses
import enum
import inspect
import pathlib
import subprocess
import sys
import typing

import pytest

import xg2g

PACKAGE = pathlib.Path(xg2g.__file__).resolve().parent
SOURCES = sorted(PACKAGE.glob("*.py"))


def _public_members(cls):
    for name, member in vars(cls).items():
        if name.startswith("_") and name != "__init__":
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property):
            member = member.fget
        if inspect.isfunction(member):
            # An inherited or a generated (dataclass) __init__ is not the class's own.
            if name == "__init__" and (dataclasses.is_dataclass(cls)
                                       or member.__qualname__.split(".")[0] != cls.__name__):
                continue
            yield f"{cls.__name__}.{name}", member


def _public_callables():
    for name in xg2g.__all__:
        obj = getattr(xg2g, name)
        if inspect.isclass(obj):
            yield name, obj
            if issubclass(obj, (enum.Enum, BaseException)) or obj is xg2g.EngineStats:
                continue
            yield from _public_members(obj)
        else:
            yield name, obj


PUBLIC = list(_public_callables())


def test_every_name_in_all_exists_and_the_list_has_the_new_names():
    for name in xg2g.__all__:
        assert hasattr(xg2g, name), name
    assert {"Lease", "StoreReport", "tls_check"} <= set(xg2g.__all__)
    assert len(set(xg2g.__all__)) == len(xg2g.__all__)


@pytest.mark.parametrize("name,obj", PUBLIC, ids=[n for n, _ in PUBLIC])
def test_every_public_class_method_and_function_has_a_docstring(name, obj):
    doc = inspect.getdoc(obj) if not inspect.isfunction(obj) else obj.__doc__
    assert doc and doc.strip(), f"{name} has no docstring"


@pytest.mark.parametrize("name,fn", [(n, o) for n, o in PUBLIC if inspect.isfunction(o)],
                         ids=[n for n, o in PUBLIC if inspect.isfunction(o)])
def test_every_public_function_is_fully_annotated_and_its_hints_resolve(name, fn):
    signature = inspect.signature(fn)
    missing = [p.name for p in signature.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    assert not missing, f"{name}: parameters without a type hint: {missing}"
    assert signature.return_annotation is not inspect.Signature.empty, f"{name}: no return type"
    typing.get_type_hints(fn)  # raises when a hint names something that does not exist


def test_dataclass_fields_have_resolvable_types():
    for cls in (xg2g.Lease, xg2g.StoreReport, xg2g.PipelineCommand, xg2g.StartResult,
                xg2g.StopResult):
        hints = typing.get_type_hints(cls)
        assert set(hints) == {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_sources_use_postponed_annotations_and_no_syntax_newer_than_3_9(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    future = [node for node in tree.body if isinstance(node, ast.ImportFrom)
              and node.module == "__future__"]
    assert any(alias.name == "annotations" for node in future for alias in node.names), \
        f"{path.name}: no 'from __future__ import annotations'"
    for node in ast.walk(tree):
        assert not isinstance(node, ast.Match), f"{path.name}:{node.lineno}: match (3.10)"
        # X | Y at run time (outside annotations) needs 3.10.
        if isinstance(node, (ast.Call, ast.Assign)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.BitOr):
                    names = [n for n in ast.walk(sub) if isinstance(n, ast.Name)]
                    assert not any(n.id in ("str", "int", "bytes", "None", "float")
                                   for n in names), f"{path.name}:{sub.lineno}: X | Y type"
    assert "|" not in "".join(
        ast.unparse(n.annotation) for n in ast.walk(tree)
        if isinstance(n, ast.arg) and n.annotation is not None), \
        f"{path.name}: an argument annotation uses X | Y (evaluated on 3.9 it fails)"
    returns = [ast.unparse(n.returns) for n in ast.walk(tree)
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.returns]
    assert not any("|" in r for r in returns), f"{path.name}: a return type uses X | Y"


def test_the_package_is_marked_typed():
    assert (PACKAGE / "py.typed").is_file()


def test_a_failed_constructor_leaves_nothing_for_garbage_collection_to_complain_about():
    code = """
import gc, xg2g
for make in (lambda: xg2g.Session("1:0:1", session_id="../x"),
             lambda: xg2g.Store("nosuchscheme:"),
             lambda: xg2g.Config(tuner_slots="x"),
             lambda: xg2g.Engine(xg2g.Config(lease_ttl_ms=1000, heartbeat_ms=1000),
                                 xg2g.Store())):
    try:
        make()
    except xg2g.Error as e:
        print(type(e).__name__)
gc.collect()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["InvalidArgument", "Unsupported", "InvalidArgument",
                                   "InvalidArgument"]
    assert "Exception ignored" not in done.stderr, done.stderr
