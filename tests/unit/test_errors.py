"""Every exception the package defines belongs to the one tree drawn in errors.py."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import agentmesh
from agentmesh import errors


def _package_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(agentmesh.__path__, "agentmesh."):
        if ".migrations" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, BaseException)
                and obj.__module__ == info.name
                and not name.startswith("_")
            ):
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_public_exception_is_an_agentmesh_error_drawn_in_the_tree() -> None:
    exceptions = _package_exceptions()
    assert exceptions, "the walk found the package's exceptions"
    outside = [n for n, cls in exceptions.items() if not issubclass(cls, errors.AgentMeshError)]
    assert outside == []
    undrawn = [n for n, cls in exceptions.items() if cls.__name__ not in (errors.__doc__ or "")]
    assert undrawn == []


def test_bad_input_is_a_validation_error_and_still_a_value_error() -> None:
    from agentmesh import subjects
    from agentmesh.resilience.retry import RetryConfig

    for bad in (lambda: subjects.task("bad tenant!", "cap"), lambda: RetryConfig(max_attempts=0)):
        with pytest.raises(errors.ValidationError) as caught:
            bad()
        assert isinstance(caught.value, ValueError)


def test_every_broad_suppress_states_its_reason() -> None:
    # ruff's BLE rule covers `except Exception`; a `suppress(Exception)` must say why too
    from pathlib import Path

    src = Path(agentmesh.__file__).parent
    silent = [
        f"{path.relative_to(src)}:{n}"
        for path in src.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "suppress(" in line and "Exception" in line and "#" not in line
    ]
    assert silent == []
