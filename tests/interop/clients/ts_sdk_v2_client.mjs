// A headless MCP host built on the official TypeScript SDK v2 (@modelcontextprotocol/client).
//
//   node ts_sdk_v2_client.mjs <mcp_url> <redirect_uri> [--version-negotiation auto]
//
// It starts from nothing but the MCP server's URL and lets the SDK do the rest, with the SDK's
// defaults: StreamableHTTPClientTransport with an OAuthClientProvider (`authProvider`; step-up on
// a 403 is `onInsufficientScope: 'reauthorize'`), version negotiation `legacy` (the plain
// `initialize` handshake), a client registered for the authorization_code and refresh_token
// grants, and the elicitation capability (form mode) with a handler that confirms. The session and
// the stdin/stdout contract are in journal_session.mjs.
//
// `--version-negotiation auto` opts into the SDK's documented `versionNegotiation: { mode: 'auto' }`:
// it probes with `server/discover` and speaks protocol revision 2026-07-28 where the server does,
// where a server asks for input (elicitation) inside the call's result (`input_required`), which the
// SDK fulfils through the same elicitation handler.

import { Client, StreamableHTTPClientTransport, UnauthorizedError } from "@modelcontextprotocol/client";

import { runJournalSession, runScript } from "./journal_session.mjs";

const argv = process.argv.slice(2);
let clientOptions = {};
if (argv.length === 4 && argv[2] === "--version-negotiation") {
  clientOptions = { versionNegotiation: { mode: argv[3] } };
  argv.splice(2, 2);
}

runScript("ts-sdk-v2-client", () =>
  runJournalSession(argv, {
    label: "ts-sdk-v2-client",
    usageTail: " [--version-negotiation auto]",
    clientOptions,
    clientName: "EpicMe interop: MCP TypeScript SDK v2 client",
    entryTitle: "Written by the MCP TypeScript SDK v2",
    Client,
    StreamableHTTPClientTransport,
    UnauthorizedError,
    // The documented form: the callback's parameters, so the SDK checks `iss` (RFC 9207) itself.
    finishAuth: (transport, redirect) => transport.finishAuth(redirect.searchParams),
    onElicitation: (client, handler) => client.setRequestHandler("elicitation/create", handler),
    // With no arguments, listTools() walks every page itself.
    listTools: async (client) => (await client.listTools()).tools.map((tool) => tool.name),
  }),
);
