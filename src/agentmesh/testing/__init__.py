"""Test your LLM agents offline: a local server speaking the Gemini, Vertex AI and OpenAI
chat APIs, answering from a script (text, tool calls, errors, broken streams).

::

    from agentmesh.testing import LocalModelServer, Reply

    async with LocalModelServer() as server:
        server.script(Reply.call("lookup", {"term": "NATS"}), Reply.say("NATS is a broker."))
        # point a provider (or `agentmesh agent start-llm-agent --base-url`) at server.url

Faults on purpose (:mod:`agentmesh.testing.chaos`) and a pytest plugin with ``mesh``,
``model_server`` and ``chaos`` fixtures (:mod:`agentmesh.testing.plugin`, enabled with
``pytest_plugins = ["agentmesh.testing.plugin"]``) test agents without any server.
"""

from agentmesh.testing.chaos import Chaos, ChaosTransport
from agentmesh.testing.ready import ready
from agentmesh.testing.script import ModelRequest, Reply, Responder, Turn, echo_responder
from agentmesh.testing.server import LocalModelServer

__all__ = [
    "Chaos",
    "ChaosTransport",
    "LocalModelServer",
    "ModelRequest",
    "Reply",
    "Responder",
    "Turn",
    "echo_responder",
    "ready",
]
