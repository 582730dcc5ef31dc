"""Tests of the EpicMe journal: the domain service, the scope table and the MCP server."""
