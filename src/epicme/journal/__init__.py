"""The EpicMe journal: entries and tags per user, served as MCP tools, resources and prompts."""
