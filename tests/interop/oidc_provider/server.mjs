// A third-party authorization server for EpicMe's interoperability tests: npm `oidc-provider`
// (a certified OpenID provider), configured the way an operator would put it in front of an MCP
// server, and nothing EpicMe-specific beyond the resource's URL and scopes.
//
//   node server.mjs <port> <mcp_url> [<other_resource> ...]
//
// - issuer http://127.0.0.1:<port>, listening on 127.0.0.1 only; prints `READY <issuer>` once up;
// - dynamic client registration (RFC 7591) open to anyone, no initial access token;
// - PKCE required for every client, S256 only (oidc-provider v9 knows no other method);
// - resource indicators (RFC 8707): `<mcp_url>` and each `<other_resource>` are resource servers
//   with EpicMe's scopes whose access tokens are JWTs (RFC 9068, `typ: at+jwt`) signed with ES256
//   and whose `aud` is that resource; any other resource is refused with `invalid_target`.
//   The other resources exist so a test can obtain a genuine token for another audience;
// - EpicMe's scopes listed in `scopes`, so `scopes_supported` advertises them;
// - a client's registered `scope` (RFC 7591 §2) is widened to every supported scope. By default
//   oidc-provider enforces it as a ceiling, and MCP SDK clients register with the scopes of the
//   first 401 challenge (EpicMe's baseline), so their later step-up to `entries:write` would be
//   refused with `invalid_scope`. Each request stays limited by the resource server's scopes and
//   the person's consent;
// - one ES256 signing key (P-256), generated at start (ID tokens are signed with it too);
// - devInteractions: oidc-provider's own development sign-in and consent pages. Any login name
//   and password sign in; the login name becomes the account id and the `sub` of every token;
// - loopback http redirect URIs: web clients may register http URIs (oidc-provider allows them),
//   native clients loopback ones on any port (RFC 8252 §7.3).
//
// Everything lives in memory (oidc-provider's MemoryAdapter) and goes away with the process.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const EPICME_SCOPES = 'user:read entries:read entries:write tags:read tags:write';
const SUPPORTED_SCOPES = ['openid', 'offline_access', ...EPICME_SCOPES.split(' ')];

function usage(message) {
  process.stderr.write(`${message}\nusage: node server.mjs <port> <mcp_url> [<other_resource> ...]\n`);
  process.exit(2);
}

const [portArgument, mcpUrl, ...otherResources] = process.argv.slice(2);
const port = Number(portArgument);
if (!Number.isInteger(port) || port <= 0 || port > 65535) usage(`not a port: ${portArgument}`);
if (!mcpUrl || !URL.canParse(mcpUrl)) usage(`not a URL: ${mcpUrl}`);
for (const other of otherResources) {
  if (!URL.canParse(other)) usage(`not a URL: ${other}`);
}

const issuer = `http://127.0.0.1:${port}`;
const resources = new Set([mcpUrl, ...otherResources]);

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: `es256-${Date.now()}` };

const provider = new Provider(issuer, {
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },

  // Advertised in `scopes_supported`; `openid` and `offline_access` are oidc-provider's own.
  scopes: SUPPORTED_SCOPES,
  claims: { openid: ['sub'] },

  // Any account exists: the login name typed on the sign-in page is its id and its `sub`.
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },

  // The registered `scope` does not limit what a client may ask for later (see above).
  extraClientMetadata: {
    properties: ['scope'],
    validator(ctx, key, value, metadata) {
      if (key === 'scope' && value !== undefined) {
        metadata.scope = SUPPORTED_SCOPES.join(' ');
      }
    },
  },

  clientDefaults: {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'ES256',
    token_endpoint_auth_method: 'none',
  },
  responseTypes: ['code'],
  pkce: { required: () => true },
  // Clients that may refresh get a refresh token, as MCP clients expect, without `offline_access`.
  async issueRefreshToken(ctx, client, code) {
    return client.grantTypeAllowed('refresh_token');
  },

  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true, initialAccessToken: false },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A request naming no resource gets no resource server token (an opaque userinfo token).
      async defaultResource(ctx, client, oneOf) {
        return oneOf;
      },
      // A refresh (or token) request naming no resource keeps the resource that was granted.
      async useGrantedResource() {
        return true;
      },
      async getResourceServerInfo(ctx, resourceIndicator, client) {
        if (!resources.has(resourceIndicator)) {
          throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
        }
        return {
          scope: EPICME_SCOPES,
          audience: resourceIndicator,
          accessTokenTTL: 10 * 60,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },

  ttl: {
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || 10 * 60,
    AuthorizationCode: 60,
    Grant: 60 * 60,
    IdToken: 10 * 60,
    Interaction: 10 * 60,
    RefreshToken: 60 * 60,
    Session: 60 * 60,
  },
});

// Errors a client caused are answered to the client; they are logged for the test's transcript.
provider.on('server_error', (ctx, error) => console.error('server_error', ctx.path, error));
provider.on('authorization.error', (ctx, error) => console.error('authorization.error', error.message, error.error_description ?? ''));
provider.on('grant.error', (ctx, error) => console.error('grant.error', error.message, error.error_description ?? ''));
provider.on('registration_create.error', (ctx, error) => console.error('registration.error', error.message, error.error_description ?? ''));

const server = createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
