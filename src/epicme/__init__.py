"""EpicMe: an OAuth-protected MCP journal server and the authorization server behind it."""

__version__ = "0.1.0"
