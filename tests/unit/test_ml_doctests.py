"""The examples in the ml/ docstrings run and print what they say."""

import doctest
import importlib

import pytest

MODULES = [
    "features", "metrics", "evaluate", "explain", "plots", "estimator", "baselines", "train", "tune",
    "registry", "scoring", "drift", "synthetic", "segments", "model_card",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"clv_platform.ml.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
