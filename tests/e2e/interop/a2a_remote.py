"""A remote A2A agent served by the a2a-sdk's own server: ``python a2a_remote.py PORT``.

Skill ``shout``: answers ``{"shout": <the word in capitals>}`` as a data artifact.
"""

from __future__ import annotations

import sys

import uvicorn
from a2a.helpers.proto_helpers import new_task
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Part,
    TaskState,
)
from google.protobuf import json_format, struct_pb2
from starlette.applications import Starlette


class Shouter(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task_id, context_id = str(context.task_id), str(context.context_id)
        await event_queue.enqueue_event(
            new_task(task_id, context_id, TaskState.TASK_STATE_SUBMITTED, history=[context.message])
        )
        updater = TaskUpdater(event_queue, task_id, context_id)
        word = ""
        for part in context.message.parts if context.message else []:
            if part.HasField("data"):
                word = str(json_format.MessageToDict(part.data).get("word", ""))
        value = struct_pb2.Value()
        json_format.ParseDict({"shout": word.upper(), "by": "remote"}, value)
        await updater.add_artifact([Part(data=value)], name="result")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, str(context.task_id), str(context.context_id)).cancel()


def main(port: int) -> None:
    card = AgentCard(
        name="Shouter",
        description="Shouts words",
        version="1.0.0",
        default_input_modes=["application/json"],
        default_output_modes=["application/json"],
        capabilities=AgentCapabilities(streaming=True),
        supported_interfaces=[
            AgentInterface(protocol_binding="JSONRPC", url=f"http://127.0.0.1:{port}/")
        ],
        skills=[AgentSkill(id="shout", name="shout", description="Capitalises a word", tags=["x"])],
    )
    handler = DefaultRequestHandler(
        agent_executor=Shouter(), task_store=InMemoryTaskStore(), agent_card=card
    )
    app = Starlette(routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/")])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]))
