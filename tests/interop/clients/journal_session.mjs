// What ts_sdk_client.mjs (SDK 1.x) and ts_sdk_v2_client.mjs (SDK v2) share: the host's side of an
// MCP session against EpicMe, written once against the API both SDK lines have in common
// (OAuthClientProvider, StreamableHTTPClientTransport + authProvider, finishAuth, Client).
//
// Each script passes its own SDK's classes to `runJournalSession`, which:
//
//   1. connects from nothing but the /mcp URL and lets the SDK do the OAuth part (the 401 challenge,
//      protected resource metadata, authorization server metadata, dynamic client registration,
//      PKCE, the token exchange, refresh, and any step-up on a 403 insufficient_scope);
//   2. lists the tools, then calls whoami, create_entry, create_tag, add_tag_to_entry, delete_entry;
//   3. answers an elicitation (a deletion to confirm) with confirm=true, as the person would.
//
// stdin/stdout contract (the user's part is played by whoever runs the script):
//
//   - when the SDK asks to send the user to the authorization server, one line
//     `AUTHORIZE <authorization url>` goes to stdout, and one line is read from stdin: the full URL
//     the browser was redirected to (`<redirect_uri>?code=...&state=...&iss=...`). Nothing listens
//     on <redirect_uri>: the URL is only registered and handed back.
//   - at the end, one line `RESULT <json>` (see `runJournalSession`) and exit code 0; on any
//     failure one line `ERROR <message>` and exit code 1.
//
// Everything stays in memory (an in-memory OAuthClientProvider); nothing is written to disk.
// Diagnostics go to stderr.

import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";

// Authorizations one operation may need: the first sign-in, then a step-up or two.
const MAX_AUTH_ROUNDS = 3;

// What the session writes; the tests know these too.
export const TAG = { name: "sdk", description: "Entries written by an SDK client" };
const CONTENT = "Through streamable HTTP.";

export function emit(kind, text) {
  process.stdout.write(`${kind} ${text}\n`);
}

export function makeDebug(label) {
  return (...parts) => process.stderr.write(`[${label}] ${parts.join(" ")}\n`);
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
 * state in memory, and sends the user to the authorization server through stdout/stdin. It
 * registers as an interactive host does: authorization code with PKCE, public client, and the
 * refresh_token grant, whose refresh token it keeps.
 */
class InMemoryOAuthClientProvider {
  constructor(clientName, redirectUri, stdinLines, debug) {
    this._clientName = clientName;
    this._redirectUri = redirectUri;
    this._stdin = stdinLines;
    this._debug = debug;
    this._clientInformation = undefined;
    this._tokens = undefined;
    this._codeVerifier = undefined;
    this._discoveryState = undefined;
    this._state = undefined;
    this._landedOn = undefined;
    this.authorizations = 0;
    this.requestedScopes = [];
    this.savedTokens = [];
    this.invalidated = [];
  }

  get redirectUrl() {
    return this._redirectUri;
  }

  get clientMetadata() {
    return {
      client_name: this._clientName,
      redirect_uris: [this._redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
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
    this.savedTokens.push({ scope: tokens.scope ?? null, refresh_token: Boolean(tokens.refresh_token) });
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
    this._debug(`the SDK invalidated credentials: ${scope}`);
    this.invalidated.push(scope);
    if (scope === "all" || scope === "client") this._clientInformation = undefined;
    if (scope === "all" || scope === "tokens") this._tokens = undefined;
    if (scope === "all" || scope === "verifier") this._codeVerifier = undefined;
    if (scope === "all" || scope === "discovery") this._discoveryState = undefined;
  }

  async redirectToAuthorization(authorizationUrl) {
    this.authorizations += 1;
    this.requestedScopes.push(authorizationUrl.searchParams.get("scope"));
    this._landedOn = undefined;
    emit("AUTHORIZE", authorizationUrl.href);
    const landedOn = (await this._stdin.next()).trim();
    this._landedOn = this._checkRedirect(landedOn);
  }

  /** The redirect URL, after checking where it went, its state, error and issuer (RFC 9207). */
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
    if (!params.get("code")) throw new Error("the redirect has no authorization code");
    return url;
  }

  /** The URL the last redirect landed on, once. */
  takeRedirect() {
    const url = this._landedOn;
    this._landedOn = undefined;
    return url;
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

/**
 * Runs the session; `sdk` names what differs between the SDK lines:
 *   { label, clientName, entryTitle, Client, StreamableHTTPClientTransport, UnauthorizedError,
 *     finishAuth(transport, redirectUrl), onElicitation(client, handler), listTools(client),
 *     clientOptions (more options for the Client constructor, if any) }
 * Returns the RESULT object:
 *   { protocolVersion, tools: [names], calls: [{name, arguments, structuredContent}],
 *     elicitations: [{message, requestedSchema, answer}], authorizations, requestedScopes,
 *     savedTokens: [{scope, refresh_token}], grantedScope, holdsRefreshToken, invalidated,
 *     clientId, registeredGrantTypes }
 */
export async function runJournalSession(argv, sdk) {
  const debug = makeDebug(sdk.label);
  if (argv.length !== 2) throw new Error(`usage: node ${sdk.label}.mjs <mcp_url> <redirect_uri>${sdk.usageTail ?? ""}`);
  const [mcpUrl, redirectUri] = argv;
  const provider = new InMemoryOAuthClientProvider(sdk.clientName, new URL(redirectUri).href, new StdinLines(), debug);
  const elicitations = [];

  let client;
  let transport;
  // Runs `operation`; when it stops for the user to authorize (the SDK throws UnauthorizedError
  // after redirectToAuthorization), finishes the authorization with the redirect and runs it again.
  const withAuthorization = async (operation) => {
    for (let round = 0; ; round += 1) {
      try {
        return await operation();
      } catch (error) {
        if (!(error instanceof sdk.UnauthorizedError)) throw error;
        const landedOn = provider.takeRedirect();
        if (landedOn === undefined) throw error;
        if (round >= MAX_AUTH_ROUNDS) throw new Error(`still unauthorized after ${round + 1} authorizations`);
        await sdk.finishAuth(transport, landedOn);
      }
    }
  };
  const connect = async () => {
    // A failed initialize closes its client and transport, so each attempt gets new ones; the
    // provider, which holds the registration and tokens, is shared.
    transport = new sdk.StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    client = new sdk.Client(
      { name: sdk.clientName, version: "1.0.0" },
      { ...sdk.clientOptions, capabilities: { elicitation: { form: {} } } },
    );
    sdk.onElicitation(client, async (request) => {
      // The person reads the question and confirms.
      const answer = { action: "accept", content: { confirm: true } };
      elicitations.push({ message: request.params.message, requestedSchema: request.params.requestedSchema, answer });
      return answer;
    });
    await client.connect(transport);
  };
  await withAuthorization(connect);
  debug(`connected; server ${JSON.stringify(client.getServerVersion())}`);

  const tools = await withAuthorization(() => sdk.listTools(client));
  const calls = [];
  const call = async (name, args) => {
    const result = await withAuthorization(() => client.callTool({ name, arguments: args }));
    const structuredContent = toolResult(name, result);
    calls.push({ name, arguments: args, structuredContent });
    return structuredContent;
  };
  await call("whoami", {});
  const entry = await call("create_entry", { title: sdk.entryTitle, content: CONTENT });
  const tag = await call("create_tag", { ...TAG });
  await call("add_tag_to_entry", { entryId: entry.id, tagId: tag.id });
  await call("delete_entry", { id: entry.id });
  const protocolVersion = transport.protocolVersion ?? null;
  await client.close();
  const tokens = provider.tokens();
  debug(`requested scopes ${JSON.stringify(provider.requestedScopes)}; granted ${tokens?.scope}`);

  return {
    protocolVersion,
    tools,
    calls,
    elicitations,
    authorizations: provider.authorizations,
    requestedScopes: provider.requestedScopes,
    savedTokens: provider.savedTokens,
    grantedScope: tokens?.scope ?? null,
    holdsRefreshToken: Boolean(tokens?.refresh_token),
    invalidated: provider.invalidated,
    clientId: provider.clientInformation()?.client_id ?? null,
    registeredGrantTypes: provider.clientInformation()?.grant_types ?? null,
  };
}

/** Runs `main`, prints RESULT or ERROR, and exits once stdout has drained (a pipe is asynchronous). */
export function runScript(label, main) {
  const debug = makeDebug(label);
  const exit = (code) => process.stdout.write("", () => process.exit(code));
  main().then(
    (result) => {
      emit("RESULT", JSON.stringify(result));
      exit(0);
    },
    (error) => {
      const message = error instanceof Error ? error.message : String(error);
      emit("ERROR", message.replace(/\s+/g, " "));
      if (error instanceof Error && error.stack) debug(error.stack);
      exit(1);
    },
  );
}
