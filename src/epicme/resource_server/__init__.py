"""The resource server: the journal's MCP endpoint behind CORS, discovery and the bearer gate."""
