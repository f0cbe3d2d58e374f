"""Loguru set-up from ``LOG_LEVEL``: coloured text on a terminal, JSON lines otherwise."""

from __future__ import annotations

import sys
from typing import Any, TextIO

import orjson
from loguru import logger

_configured: tuple[str, bool] | None = None


def configure_logging(
    level: str = "INFO", *, json: bool | None = None, sink: TextIO | None = None
) -> None:
    """(Re)configure the global logger; ``json=None`` picks JSON when stderr is not a TTY."""
    global _configured
    out = sink or sys.stderr
    as_json = (not out.isatty()) if json is None else json
    logger.remove()
    if as_json:

        def write_json(message: Any) -> None:
            r = message.record
            line: dict[str, Any] = {
                "time": r["time"].isoformat(),
                "level": r["level"].name,
                "logger": r["name"],
                "message": r["message"],
            }
            if r["extra"]:
                line["extra"] = r["extra"]
            if r["exception"] is not None:
                line["exception"] = f"{r['exception'].type.__name__}: {r['exception'].value}"
            out.write(orjson.dumps(line, default=str).decode() + "\n")
            out.flush()

        logger.add(write_json, level=level, backtrace=False, diagnose=False)
    else:
        logger.add(
            out,
            level=level,
            backtrace=False,
            diagnose=False,
            colorize=True,
            format="<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
            "<cyan>{name}</cyan> {message}",
        )
    _configured = (level, as_json)
