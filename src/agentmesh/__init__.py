"""AgentMesh."""
