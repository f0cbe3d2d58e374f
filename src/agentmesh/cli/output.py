"""Shared CLI plumbing: one-line errors, JSON output, settings loading."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import orjson
from rich.console import Console

console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one red line to stderr and exit non-zero (never a traceback)."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True)
    raise SystemExit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    sys.stdout.flush()
