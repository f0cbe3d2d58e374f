"""Providers from :class:`~agentmesh.config.Settings`: credentials are checked first, so a
missing one is one clear :class:`~agentmesh.errors.ConfigError` naming the variable,
before anything connects.

=========  ==================================================================  ==================
provider   credentials                                                         model default
=========  ==================================================================  ==================
vertex     ``GCP_PROJECT_ID`` + ``GOOGLE_APPLICATION_CREDENTIALS`` (key file)  ``VERTEX_AI_MODEL``
gemini     ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``)                          ``VERTEX_AI_MODEL``
openai     ``OPENAI_API_KEY`` (any value for servers without keys)             ``gpt-4o-mini``
=========  ==================================================================  ==================
"""

from __future__ import annotations

import json
from pathlib import Path

from agentmesh.config import Settings
from agentmesh.errors import ConfigError, ValidationError
from agentmesh.llm.base import LLMProvider
from agentmesh.llm.resilient import Price, ResilientProvider

PROVIDERS = ("vertex", "gemini", "openai")
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


def check_credentials(kind: str, settings: Settings, *, project: str | None = None) -> None:
    """Raise :class:`ConfigError` naming the first missing variable of ``kind``."""
    if kind not in PROVIDERS:
        raise ValidationError(f"unknown provider {kind!r}: use one of {', '.join(PROVIDERS)}")
    if kind == "vertex":
        if not (project or settings.gcp_project_id):
            raise ConfigError("GCP_PROJECT_ID is not set (or pass --gcp-project-id)")
        creds = settings.google_application_credentials
        if not creds:
            raise ConfigError("GOOGLE_APPLICATION_CREDENTIALS is not set")
        if not Path(creds).is_file():
            raise ConfigError(f"GOOGLE_APPLICATION_CREDENTIALS: no such file {creds}")
    elif kind == "gemini":
        if not (settings.gemini_api_key or settings.google_api_key):
            raise ConfigError("GEMINI_API_KEY (or GOOGLE_API_KEY) is not set")
    elif not settings.openai_api_key:
        raise ConfigError("OPENAI_API_KEY is not set")


def prices_from(settings: Settings) -> dict[str, Price]:
    """``AGENTMESH_LLM_PRICES`` parsed: ``{"model": [input, output]}`` USD per million."""
    if not settings.agentmesh_llm_prices:
        return {}
    try:
        raw = json.loads(settings.agentmesh_llm_prices)
        return {str(k): Price(float(v[0]), float(v[1])) for k, v in raw.items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise ConfigError('AGENTMESH_LLM_PRICES must be JSON like {"gpt-4o": [2.5, 10]}') from None


def build_provider(
    kind: str,
    settings: Settings,
    *,
    model: str | None = None,
    base_url: str | None = None,
    project: str | None = None,
    location: str | None = None,
) -> LLMProvider:
    """The provider ``kind`` (``vertex``, ``gemini``, ``openai``), without retries."""
    check_credentials(kind, settings, project=project)
    timeout = settings.agentmesh_llm_timeout
    if kind == "openai":
        from agentmesh.llm.openai_compat import openai_provider

        return openai_provider(
            model or DEFAULT_OPENAI_MODEL,
            api_key=settings.openai_api_key or "",
            base_url=base_url or settings.openai_base_url,
            timeout=timeout,
        )
    from agentmesh.llm.vertex import gemini_provider, vertex_provider

    if kind == "gemini":
        return gemini_provider(
            model or settings.vertex_ai_model,
            api_key=settings.gemini_api_key or settings.google_api_key or "",
            base_url=base_url,
            timeout=timeout,
        )
    return vertex_provider(
        model or settings.vertex_ai_model,
        project=project or settings.gcp_project_id or "",
        location=location or settings.google_cloud_location,
        credentials_file=settings.google_application_credentials,
        base_url=base_url,
        timeout=timeout,
    )


def resilient_provider(kind: str, settings: Settings, **kw: str | None) -> ResilientProvider:
    """:func:`build_provider` inside breaker, retries, timeout, metrics and prices."""
    return ResilientProvider(
        build_provider(kind, settings, **kw),
        timeout=settings.agentmesh_llm_timeout,
        prices=prices_from(settings),
    )
