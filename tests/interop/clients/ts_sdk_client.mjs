// A headless MCP host built on the official TypeScript SDK 1.x (@modelcontextprotocol/sdk).
//
//   node ts_sdk_client.mjs <mcp_url> <redirect_uri>
//
// It starts from nothing but the MCP server's URL and lets the SDK do the rest, with the SDK's
// defaults: StreamableHTTPClientTransport with an OAuthClientProvider (`authProvider`), a client
// registered for the authorization_code and refresh_token grants, and the elicitation capability
// (form mode) with a handler that confirms. The session and the stdin/stdout contract are in
// journal_session.mjs.

import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

import { runJournalSession, runScript } from "./journal_session.mjs";

async function listTools(client) {
  const names = [];
  let cursor;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor });
    names.push(...page.tools.map((tool) => tool.name));
    cursor = page.nextCursor;
  } while (cursor);
  return names;
}

runScript("ts-sdk-client", () =>
  runJournalSession(process.argv.slice(2), {
    label: "ts-sdk-client",
    clientName: "EpicMe interop: MCP TypeScript SDK 1.x client",
    entryTitle: "Written by the MCP TypeScript SDK 1.x",
    Client,
    StreamableHTTPClientTransport,
    UnauthorizedError,
    // SDK 1.x takes the code alone (its provider checked state and iss already).
    finishAuth: (transport, redirect) => transport.finishAuth(redirect.searchParams.get("code")),
    onElicitation: (client, handler) => client.setRequestHandler(ElicitRequestSchema, handler),
    listTools,
  }),
);
