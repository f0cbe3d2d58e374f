"""Language models behind one small Protocol (:class:`LLMProvider`): Vertex AI and Gemini
through ``google-genai``, any OpenAI-compatible server through ``openai``.

::

    from agentmesh.llm import ChatMessage, build_provider

    provider = build_provider("openai", settings, model="gpt-4o-mini")
    done = await provider.complete([ChatMessage.user("Hello")])
"""

from agentmesh.llm.base import (
    ChatMessage,
    Completion,
    CompletionOptions,
    LLMProvider,
    StreamDelta,
    ToolCall,
    ToolSpec,
    Usage,
    collect,
)
from agentmesh.llm.factory import PROVIDERS, build_provider, check_credentials, resilient_provider
from agentmesh.llm.resilient import Price, ResilientProvider

__all__ = [
    "PROVIDERS",
    "ChatMessage",
    "Completion",
    "CompletionOptions",
    "LLMProvider",
    "Price",
    "ResilientProvider",
    "StreamDelta",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "build_provider",
    "check_credentials",
    "collect",
    "resilient_provider",
]
