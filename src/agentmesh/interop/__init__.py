"""Interoperability: AsyncAPI (:mod:`.asyncapi`), MCP (:mod:`.mcp`) and A2A (:mod:`.a2a`)."""
