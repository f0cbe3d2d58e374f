"""The README's Python snippets run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_python_snippets_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README shows how to write an agent"
    for i, code in enumerate(blocks):
        script = tmp_path / f"snippet_{i}.py"
        script.write_text(code)
        proc = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={"AGENTMESH_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
        assert proc.returncode == 0, proc.stderr
        assert "summary" in proc.stdout
