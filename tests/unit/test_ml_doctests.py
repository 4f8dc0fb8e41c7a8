"""The examples in the ml/ docstrings run and print what they say."""

import doctest
import importlib
import pkgutil

import pytest

import clv_platform.ml

MODULES = sorted(m.name for m in pkgutil.iter_modules(clv_platform.ml.__path__))
# Modules whose docstrings hold no examples; every other module must run at least one.
WITHOUT_EXAMPLES = {"ladder", "model_card", "pyfunc", "registration", "registry", "train", "tune"}


def test_the_list_names_real_modules():
    assert set(MODULES) > WITHOUT_EXAMPLES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"clv_platform.ml.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    # An example lost from a module that had some (or a module that gained some unlisted) is noticed.
    assert (result.attempted > 0) == (name not in WITHOUT_EXAMPLES), result
