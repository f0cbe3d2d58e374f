"""Every ``agentmesh agent start*`` process serves ``/metrics`` on ``PROMETHEUS_PORT`` when
``PROMETHEUS_ENABLED`` (port 0 picks a free one; the line ``Metrics: http://...`` says
which), so the metrics of agent processes are scraped like the control plane's."""

from __future__ import annotations

import typer


def register(agent_app: typer.Typer) -> None:
    """Serve process metrics in every ``agent start*`` process, once its mesh starts."""

    @agent_app.callback()
    def agent_group(ctx: typer.Context) -> None:
        """Run and manage agents."""
        sub = ctx.invoked_subcommand or ""
        if not sub.startswith("start"):
            return
        from agentmesh.cli.main import load_settings
        from agentmesh.cli.output import console
        from agentmesh.observability.process_metrics import request_process_metrics

        settings = load_settings()
        request_process_metrics(
            settings.prometheus_enabled,
            settings.prometheus_port,
            settings.api_host,
            lambda line: console.print(line, highlight=False, soft_wrap=True),
        )
