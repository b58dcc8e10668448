"""The examples in the public API's docstrings run, with the real model, and print what
they say (doctest: an example whose output differs fails its module)."""

import doctest
import importlib

import pytest

MODULES = ["nacrith_codec", "nacrith_codec.api", "nacrith_codec.file",
           "nacrith_codec.plugins.fsspec_compression", "nacrith_codec.plugins.fsspec_filesystem",
           "nacrith_codec.plugins.sevenzip"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    assert tests, f"{name} has no examples in its docstrings"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
