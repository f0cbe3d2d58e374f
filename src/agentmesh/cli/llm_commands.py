"""``agentmesh agent start-llm-agent`` and ``start-vertex-agent``: LLM agents as processes.

Credentials are checked before anything connects: a missing one is one red line naming
the variable, exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from agentmesh.cli.agent_kinds import CapabilitiesOpt, TenantOpt, _prepare, _serve
from agentmesh.cli.output import fail

EXIT_CONFIG = 2

BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="Endpoint override: a proxy, an OpenAI-compatible server, or agentmesh.testing.",
    ),
]
SystemPromptOpt = Annotated[
    str | None, typer.Option("--system-prompt", help="The agent's system prompt.")
]
ToolsOpt = Annotated[
    str | None,
    typer.Option(
        "--tools",
        help="Allow-list of capabilities the model may call, comma-separated "
        "(default: every live capability that declares a spec).",
    ),
]
DurableToolsOpt = Annotated[
    str | None,
    typer.Option(
        "--durable-tools", help="Capabilities called as durable tasks (long work), comma-separated."
    ),
]
RoundsOpt = Annotated[int, typer.Option("--max-tool-rounds", min=0, max=64)]
BudgetOpt = Annotated[int, typer.Option("--token-budget", min=1, help="Tokens per task.")]
CostOpt = Annotated[
    float | None,
    typer.Option("--cost-ceiling", min=0.0, help="USD per task (prices: AGENTMESH_LLM_PRICES)."),
]
ConcurrencyOpt = Annotated[int, typer.Option("--max-concurrent", min=1, max=1000)]


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [n for n in (p.strip() for p in value.replace(" ", ",").split(",")) if n]


def _start(
    agent_id: str,
    capabilities: list[str],
    tenant: str | None,
    kind: str,
    *,
    model: str | None,
    base_url: str | None,
    project: str | None = None,
    location: str | None = None,
    options: dict[str, Any],
    max_concurrent: int = 8,
    orchestrate: bool = False,
) -> None:
    from agentmesh.agents.llm import LLMAgentConfig, llm_agent
    from agentmesh.agents.llm_orchestrator import llm_orchestrator
    from agentmesh.errors import AgentMeshError, ConfigError
    from agentmesh.llm.factory import prices_from, resilient_provider

    settings, caps = _prepare(agent_id, capabilities)
    try:
        provider = resilient_provider(
            kind, settings, model=model, base_url=base_url, project=project, location=location
        )
        config = LLMAgentConfig(prices=prices_from(settings), **options)
    except ConfigError as exc:
        fail(exc.message, EXIT_CONFIG)
    except AgentMeshError as exc:
        fail(exc.message)
    secrets = [
        s for s in (settings.openai_api_key, settings.gemini_api_key, settings.google_api_key) if s
    ]
    kind_of_agent = llm_orchestrator if orchestrate else llm_agent
    built: list[Any] = []

    async def cleanup() -> None:
        for runtime in built:  # MCP server connections of the agent
            close = getattr(runtime.handler, "aclose", None)
            if close is not None:
                await close()
        await provider.aclose()

    def build(m: Any) -> None:
        built.append(
            kind_of_agent(
                m,
                agent_id,
                provider,
                capabilities=caps,
                config=config,
                secrets=secrets,
                max_concurrent=max_concurrent,
            )
        )

    _serve(
        settings,
        tenant,
        build,
        f"LLM agent {agent_id} ({provider.name}/{provider.model})",
        cleanup=cleanup,
    )


def register_llm_commands(agent_app: typer.Typer) -> None:
    """Add ``start-llm-agent`` and ``start-vertex-agent`` to ``agentmesh agent``."""

    @agent_app.command("start-llm-agent")
    def start_llm_agent(
        agent_id: Annotated[str, typer.Argument(help="Agent id.")],
        capabilities: CapabilitiesOpt,
        provider: Annotated[
            str, typer.Option("--provider", help="vertex, gemini or openai.")
        ] = "openai",
        model: Annotated[
            str | None,
            typer.Option("--model", help="Model (default VERTEX_AI_MODEL, or gpt-4o-mini)."),
        ] = None,
        base_url: BaseUrlOpt = None,
        system_prompt: SystemPromptOpt = None,
        tools: ToolsOpt = None,
        durable_tools: DurableToolsOpt = None,
        max_tool_rounds: RoundsOpt = 8,
        token_budget: BudgetOpt = 200_000,
        cost_ceiling: CostOpt = None,
        gcp_project_id: Annotated[
            str | None, typer.Option("--gcp-project-id", help="Vertex: project (GCP_PROJECT_ID).")
        ] = None,
        location: Annotated[
            str | None, typer.Option(help="Vertex: region (GOOGLE_CLOUD_LOCATION).")
        ] = None,
        tenant: TenantOpt = None,
        max_concurrent: ConcurrencyOpt = 8,
        orchestrate: Annotated[
            bool,
            typer.Option(
                "--orchestrate",
                help="An LLM orchestrator: plans subtasks ({'goal': ...}), runs them, answers.",
            ),
        ] = False,
        mcp_config: Annotated[
            Path | None,
            typer.Option(
                "--mcp-config",
                help="JSON list of MCP servers whose allow-listed tools the model may use: "
                '[{"name", "tools": [...], "command" + "args" | "url" + "headers"}].',
            ),
        ] = None,
    ) -> None:
        """Start an LLM agent: tasks become model calls; other agents are its tools."""
        from agentmesh.llm import PROVIDERS

        if provider not in PROVIDERS:
            fail(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")
        options = _options(
            system_prompt, tools, durable_tools, max_tool_rounds, token_budget, cost_ceiling
        )
        if mcp_config is not None:
            from agentmesh.errors import AgentMeshError
            from agentmesh.interop.mcp_client import servers_from_file

            try:
                options["mcp_servers"] = servers_from_file(mcp_config)
            except AgentMeshError as exc:
                fail(f"--mcp-config {mcp_config}: {exc.message}", EXIT_CONFIG)
        _start(
            agent_id,
            capabilities,
            tenant,
            provider,
            model=model,
            base_url=base_url,
            project=gcp_project_id,
            location=location,
            options=options,
            max_concurrent=max_concurrent,
            orchestrate=orchestrate,
        )

    @agent_app.command("start-vertex-agent")
    def start_vertex_agent(
        agent_id: Annotated[str, typer.Argument(help="Agent id.")],
        capabilities: CapabilitiesOpt,
        gcp_project_id: Annotated[
            str | None,
            typer.Option("--gcp-project-id", help="GCP project (default GCP_PROJECT_ID)."),
        ] = None,
        model_name: Annotated[
            str | None,
            typer.Option("--model-name", help="Model (default VERTEX_AI_MODEL, gemini-1.5-pro)."),
        ] = None,
        location: Annotated[
            str | None, typer.Option(help="Region (default GOOGLE_CLOUD_LOCATION, us-central1).")
        ] = None,
        base_url: BaseUrlOpt = None,
        system_prompt: SystemPromptOpt = None,
        tools: ToolsOpt = None,
        durable_tools: DurableToolsOpt = None,
        max_tool_rounds: RoundsOpt = 8,
        token_budget: BudgetOpt = 200_000,
        cost_ceiling: CostOpt = None,
        tenant: TenantOpt = None,
        max_concurrent: ConcurrencyOpt = 8,
    ) -> None:
        """Start a VertexAIAgent (Gemini on Vertex AI; credentials from
        GOOGLE_APPLICATION_CREDENTIALS)."""
        _start(
            agent_id,
            capabilities,
            tenant,
            "vertex",
            model=model_name,
            base_url=base_url,
            project=gcp_project_id,
            location=location,
            options=_options(
                system_prompt, tools, durable_tools, max_tool_rounds, token_budget, cost_ceiling
            ),
            max_concurrent=max_concurrent,
        )


def _options(
    system_prompt: str | None,
    tools: str | None,
    durable_tools: str | None,
    max_tool_rounds: int,
    token_budget: int,
    cost_ceiling: float | None,
) -> dict[str, Any]:
    return {
        "system_prompt": system_prompt or "",
        "tools": _names(tools),
        "durable_tools": _names(durable_tools) or (),
        "max_tool_rounds": max_tool_rounds,
        "token_budget": token_budget,
        "cost_ceiling_usd": cost_ceiling,
    }
