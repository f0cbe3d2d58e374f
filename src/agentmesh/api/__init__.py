"""The control plane: FastAPI REST (``/v1``), WebSocket ``/ws``, health and metrics.

``agentmesh.api.fastapi_app:app`` is the ASGI application; :func:`create_app` builds one
with injected dependencies (settings, mesh, persistence, audit store, options).
"""
