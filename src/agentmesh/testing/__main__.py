"""``python -m agentmesh.testing [--port P] [--call TOOL --args JSON]``: the local model
server as a process (prints its URL, serves until SIGINT/SIGTERM).

Without ``--call`` it echoes the last user text; with it, a request offering ``TOOL`` that
has no tool result yet gets a call to ``TOOL`` with ``--args``, and then an answer that
quotes the tool's result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from agentmesh.testing.script import ModelRequest, Reply, Responder, echo_responder
from agentmesh.testing.server import LocalModelServer


def tool_responder(tool: str, args: dict[str, Any]) -> Responder:
    def respond(request: ModelRequest) -> Reply:
        if request.tool_results:
            return Reply.say(f"{tool} answered {json.dumps(request.tool_results[-1][1])}")
        if tool in request.tools:
            return Reply.call(tool, args)
        return echo_responder(request)

    return respond


async def serve(port: int, responder: Responder) -> None:
    server = await LocalModelServer(port=port, responder=responder).start()
    print(server.url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(prog="python -m agentmesh.testing", description=__doc__)
    cli.add_argument("--port", type=int, default=0)
    cli.add_argument("--call", help="a tool to call when it is offered")
    cli.add_argument("--args", default="{}", help="its arguments (JSON object)")
    ns = cli.parse_args(argv)
    try:
        args = json.loads(ns.args)
    except json.JSONDecodeError:
        sys.exit("error: --args must be a JSON object")
    responder = tool_responder(ns.call, args) if ns.call else echo_responder
    asyncio.run(serve(ns.port, responder))


if __name__ == "__main__":
    main()
