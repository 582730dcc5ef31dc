// A headless MCP client built on the official TypeScript SDK (@modelcontextprotocol/sdk 1.x).
//
//   node ts_sdk_client.mjs <mcp_url> <redirect_uri>
//
// It starts from nothing but the MCP server's URL and lets the SDK do the rest: the 401 challenge,
// protected resource metadata, authorization server metadata, dynamic client registration, PKCE,
// the token exchange and, on a 403 insufficient_scope, whatever step-up the SDK does by itself.
// The user's part is played over stdio by whoever runs the script:
//
//   - when the SDK asks to send the user to the authorization server, one line
//     `AUTHORIZE <authorization url>` goes to stdout, and one line is read from stdin: the full URL
//     the browser was redirected to (`<redirect_uri>?code=...&state=...&iss=...`). Nothing listens
//     on <redirect_uri>: the URL is only registered and handed back.
//   - at the end, one line `RESULT <json>` with
//     {"tools": [names], "whoami": structuredContent, "created": structuredContent, "authorizations": n}
//     and exit code 0; on any failure one line `ERROR <message>` and exit code 1.
//
// The script keeps everything in memory (an in-memory OAuthClientProvider) and writes nothing to
// disk. Diagnostics go to stderr.

import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";

import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const ENTRY = {
  title: "Written by the MCP TypeScript SDK",
  content: "An entry created by @modelcontextprotocol/sdk over streamable HTTP.",
};
// Authorizations one operation may need: the first sign-in, then a step-up or two.
const MAX_AUTH_ROUNDS = 3;

function emit(kind, text) {
  process.stdout.write(`${kind} ${text}\n`);
}

function debug(...parts) {
  process.stderr.write(`[ts-sdk-client] ${parts.join(" ")}\n`);
}

/** One line at a time from stdin, for the redirect URLs the user's browser lands on. */
class StdinLines {
  constructor() {
    this.queue = [];
    this.waiters = [];
    this.closed = false;
    const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
    lines.on("line", (line) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(line);
      else this.queue.push(line);
    });
    lines.on("close", () => {
      this.closed = true;
      for (const waiter of this.waiters.splice(0)) waiter.reject(new Error("stdin closed before a redirect URL arrived"));
    });
  }

  next() {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift());
    if (this.closed) return Promise.reject(new Error("stdin closed before a redirect URL arrived"));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

/**
 * An OAuthClientProvider that keeps the client registration, tokens, PKCE verifier and discovery
 * state in memory, and sends the user to the authorization server through stdout/stdin.
 */
class InMemoryOAuthClientProvider {
  constructor(redirectUri, stdinLines) {
    this._redirectUri = redirectUri;
    this._stdin = stdinLines;
    this._clientInformation = undefined;
    this._tokens = undefined;
    this._codeVerifier = undefined;
    this._discoveryState = undefined;
    this._state = undefined;
    this._code = undefined;
    this.authorizations = 0;
    this.requestedScopes = [];
  }

  get redirectUrl() {
    return this._redirectUri;
  }

  get clientMetadata() {
    // No refresh_token grant: tokens live only as long as this process, so a refresh token has no
    // use here. (It would also stop the SDK stepping up: holding one, SDK 1.x answers a 403
    // insufficient_scope by refreshing, which cannot widen the scope, and then gives up.)
    return {
      client_name: "EpicMe interop: MCP TypeScript SDK client",
      redirect_uris: [this._redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }

  state() {
    this._state = randomBytes(24).toString("base64url");
    return this._state;
  }

  clientInformation() {
    return this._clientInformation;
  }

  saveClientInformation(clientInformation) {
    this._clientInformation = clientInformation;
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this._tokens = tokens;
  }

  saveCodeVerifier(codeVerifier) {
    this._codeVerifier = codeVerifier;
  }

  codeVerifier() {
    if (this._codeVerifier === undefined) throw new Error("no PKCE code verifier was saved");
    return this._codeVerifier;
  }

  saveDiscoveryState(state) {
    this._discoveryState = state;
  }

  discoveryState() {
    return this._discoveryState;
  }

  invalidateCredentials(scope) {
    debug(`the SDK invalidated credentials: ${scope}`);
    if (scope === "all" || scope === "client") this._clientInformation = undefined;
    if (scope === "all" || scope === "tokens") this._tokens = undefined;
    if (scope === "all" || scope === "verifier") this._codeVerifier = undefined;
    if (scope === "all" || scope === "discovery") this._discoveryState = undefined;
  }

  async redirectToAuthorization(authorizationUrl) {
    this.authorizations += 1;
    this.requestedScopes.push(authorizationUrl.searchParams.get("scope"));
    this._code = undefined;
    emit("AUTHORIZE", authorizationUrl.href);
    const landedOn = (await this._stdin.next()).trim();
    this._code = this._checkRedirect(landedOn);
  }

  /** The authorization code from the redirect, after checking state, error and issuer (RFC 9207). */
  _checkRedirect(landedOn) {
    let url;
    try {
      url = new URL(landedOn);
    } catch {
      throw new Error(`not a redirect URL: ${JSON.stringify(landedOn)}`);
    }
    const expected = new URL(this._redirectUri);
    if (url.origin !== expected.origin || url.pathname !== expected.pathname) {
      throw new Error(`the redirect went to ${url.origin}${url.pathname}, not to ${this._redirectUri}`);
    }
    const params = url.searchParams;
    if (params.get("state") !== this._state) {
      throw new Error(`the redirect's state ${JSON.stringify(params.get("state"))} is not the one sent`);
    }
    const metadata = this._discoveryState?.authorizationServerMetadata;
    const iss = params.get("iss");
    if (iss !== null && metadata?.issuer !== undefined && iss !== metadata.issuer) {
      throw new Error(`the redirect's iss ${iss} is not the authorization server's issuer ${metadata.issuer}`);
    }
    if (iss === null && metadata?.authorization_response_iss_parameter_supported === true) {
      throw new Error("the authorization server promises an iss parameter (RFC 9207) but the redirect has none");
    }
    if (params.has("error")) {
      const description = params.get("error_description");
      throw new Error(`authorization failed: ${params.get("error")}${description ? ` (${description})` : ""}`);
    }
    const code = params.get("code");
    if (!code) throw new Error("the redirect has no authorization code");
    return code;
  }

  /** The code the last redirect brought, once. */
  takeAuthorizationCode() {
    const code = this._code;
    this._code = undefined;
    return code;
  }
}

function isUnauthorized(error) {
  return error instanceof UnauthorizedError || error?.name === "UnauthorizedError";
}

/**
 * Runs `operation`; when it stops for the user to authorize (the SDK then throws
 * UnauthorizedError after redirectToAuthorization), finishes the authorization with the code the
 * redirect brought and runs it again.
 */
async function withAuthorization(provider, transportOf, operation) {
  for (let round = 0; ; round += 1) {
    try {
      return await operation();
    } catch (error) {
      if (!isUnauthorized(error)) throw error;
      const code = provider.takeAuthorizationCode();
      if (code === undefined) throw error;
      if (round >= MAX_AUTH_ROUNDS) throw new Error(`still unauthorized after ${round + 1} authorizations`);
      await transportOf().finishAuth(code);
    }
  }
}

function toolResult(name, result) {
  if (result.isError) {
    const text = (result.content ?? []).map((part) => part.text ?? "").join(" ");
    throw new Error(`${name} returned an error: ${text}`);
  }
  if (result.structuredContent === undefined) throw new Error(`${name} returned no structuredContent`);
  return result.structuredContent;
}

async function main(argv) {
  if (argv.length !== 2) throw new Error("usage: node ts_sdk_client.mjs <mcp_url> <redirect_uri>");
  const [mcpUrl, redirectUri] = argv;
  const provider = new InMemoryOAuthClientProvider(new URL(redirectUri).href, new StdinLines());

  let client;
  let transport;
  const connect = async () => {
    // A failed initialize closes its client and transport, so each attempt gets new ones; the
    // provider, which holds the registration and tokens, is shared.
    transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    client = new Client({ name: "epicme-interop-ts-sdk-client", version: "1.0.0" });
    await client.connect(transport);
  };
  await withAuthorization(provider, () => transport, connect);
  debug(`connected; server ${JSON.stringify(client.getServerVersion())}`);

  const call = (operation) => withAuthorization(provider, () => transport, operation);
  const tools = [];
  let cursor;
  do {
    const page = await call(() => client.listTools(cursor === undefined ? {} : { cursor }));
    tools.push(...page.tools.map((tool) => tool.name));
    cursor = page.nextCursor;
  } while (cursor);
  const whoami = toolResult("whoami", await call(() => client.callTool({ name: "whoami", arguments: {} })));
  const created = toolResult(
    "create_entry",
    await call(() => client.callTool({ name: "create_entry", arguments: { ...ENTRY } })),
  );
  await client.close();
  debug(`requested scopes ${JSON.stringify(provider.requestedScopes)}; granted ${provider.tokens()?.scope}`);

  emit(
    "RESULT",
    JSON.stringify({
      tools,
      whoami,
      created,
      authorizations: provider.authorizations,
    }),
  );
}

// Exit once stdout has drained: a pipe is written asynchronously.
const exit = (code) => process.stdout.write("", () => process.exit(code));

main(process.argv.slice(2)).then(
  () => exit(0),
  (error) => {
    const message = error instanceof Error ? error.message : String(error);
    emit("ERROR", message.replace(/\s+/g, " "));
    if (error instanceof Error && error.stack) debug(error.stack);
    exit(1);
  },
);
