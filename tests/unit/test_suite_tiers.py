"""The suite's tiers: the default command runs every one, and the model compile cache outlives a run."""

import ast
import os
import tempfile
import tomllib
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
TIERS = ("unit", "component", "integration")


def _conftest_list(name: str) -> list[str]:
    tree = ast.parse((TESTS / "conftest.py").read_text())
    [value] = [node.value for node in tree.body if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == name]
    return ast.literal_eval(value)


def test_the_default_command_runs_every_tier():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    paths = [(ROOT / p).resolve() for p in options["testpaths"]]
    for tier in TIERS:
        folder = TESTS / tier
        assert sorted(folder.glob("test_*.py")), f"tests/{tier} holds no test module"
        assert any(folder == p or p in folder.parents for p in paths), f"testpaths {options['testpaths']} leave out tests/{tier}"
    # Every test module is in a tier, apart from the definitions test at the top.
    assert sorted(p.name for p in TESTS.glob("test_*.py")) == ["test_defs.py"]


def test_the_slowest_first_order_names_modules_that_exist():
    order = _conftest_list("SLOWEST_FIRST")
    assert [name for name in order if not (TESTS / name).is_file()] == []
    assert len(set(order)) == len(order)


def test_the_pytensor_compile_cache_outlives_the_run():
    flags = dict(f.split("=", 1) for f in os.environ["PYTENSOR_FLAGS"].split(",") if "=" in f)
    cache = Path(flags["base_compiledir"]).resolve()
    # Not under a temporary directory (deleted at the end of a run), nor in the checkout's state.
    assert not cache.is_relative_to(Path(tempfile.gettempdir()).resolve()), cache
    assert not cache.is_relative_to(ROOT), cache
