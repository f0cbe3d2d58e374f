"""Test your LLM agents offline: a local server speaking the Gemini, Vertex AI and OpenAI
chat APIs, answering from a script (text, tool calls, errors, broken streams).

::

    from agentmesh.testing import LocalModelServer, Reply

    async with LocalModelServer() as server:
        server.script(Reply.call("lookup", {"term": "NATS"}), Reply.say("NATS is a broker."))
        # point a provider (or `agentmesh agent start-llm-agent --base-url`) at server.url
"""

from agentmesh.testing.script import ModelRequest, Reply, Responder, Turn, echo_responder
from agentmesh.testing.server import LocalModelServer

__all__ = [
    "LocalModelServer",
    "ModelRequest",
    "Reply",
    "Responder",
    "Turn",
    "echo_responder",
]
