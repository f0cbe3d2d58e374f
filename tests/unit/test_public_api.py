"""``agentmesh.__all__`` is the public API: complete and importable."""

from __future__ import annotations

import agentmesh


def test_all_is_complete_and_importable() -> None:
    public = {name for name in dir(agentmesh) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(agentmesh, name)).__name__ == "module"}
    assert set(agentmesh.__all__) - {"__version__"} == public - modules
    for name in agentmesh.__all__:
        assert getattr(agentmesh, name) is not None
