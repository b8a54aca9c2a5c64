"""Method tests: every shipped method, discovered from the registry, on one thread.

A test that takes a ``method_name`` argument runs once per method that edgessl ships
(registered from a module of ``edgessl.methods``; test doubles such as the trainer tests'
``tiny`` are not shipped methods). ``small_method`` builds one with shrunk heads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

import pytest
import torch
from teachers import teacher_fields

from edgessl.methods import METHODS, Method, build_method, method_class, method_names

MEAN, STD = (0.45, 0.44, 0.40), (0.25, 0.25, 0.26)  # every small method's normalisation
# Config fields shrunk wherever a method has them, so every method x backbone pair runs in seconds.
SMALL = {"hidden_dim": 32, "out_dim": 16, "queue_size": 16}


def shipped_method_names() -> list[str]:
    return [name for name in method_names() if METHODS.get(name).__module__.startswith("edgessl.methods.")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "method_name" in metafunc.fixturenames:
        metafunc.parametrize("method_name", shipped_method_names())


def shrunk_fields(name: str) -> dict[str, int]:
    """The :data:`SMALL` values of the config fields method ``name`` has."""
    return {
        key: value
        for key, value in SMALL.items()
        if key in {f.name for f in fields(method_class(name).Config)}
    }


def build_small_method(name: str, backbone: str = "squeezenet", size: int = 32, **overrides: Any) -> Method:
    """A method with shrunk heads, and a small frozen teacher where the method distils from one."""
    cls = method_class(name)
    config = cls.Config(**{**shrunk_fields(name), **teacher_fields(cls.Config), **overrides})
    return build_method(name, backbone, size, MEAN, STD, config)


@pytest.fixture
def small_method() -> Callable[..., Method]:
    """``small_method(name, backbone="squeezenet", size=32, **config_fields)``."""
    return build_small_method


@pytest.fixture
def small_fields() -> Callable[[str], dict[str, int]]:
    """``small_fields(name)``: the shrunk config fields, e.g. to pass as ``--set``."""
    return shrunk_fields


@pytest.fixture
def shipped_methods() -> list[str]:
    return shipped_method_names()


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """The test machine's two cores are shared: one thread avoids OpenMP spin contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
