"""The pages the browser tests load from an origin that is not EpicMe's (tests/interop/test_browser.py).

One small Starlette site, served on its own loopback port:

    /            a page whose script calls the resource server with fetch(), as a browser-based MCP
                 client would: `window.runDiscovery({...})` runs the calls and returns what the page
                 could read of each answer (it also leaves them in `window.discoveryResults`)
    /frame       a page embedding `?epicme=<url>` and `?control=<url>` in two iframes
    /hello       a page that may be framed: the control, proving a frame from elsewhere does render
    /callback    an OAuth client's redirect URI: records each query it receives, in `callbacks`
"""

from __future__ import annotations

import html

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

# The calls of a browser-based MCP client's discovery (the seed's order), then `initialize`
# without and with a token. Each entry holds what the page could read: every header the browser
# let through (CORS-safelisted or exposed), or the error fetch() threw.
DISCOVERY_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Browser MCP client (test page)</title></head>
<body>
<h1>Browser MCP client (test page)</h1>
<p id="status">idle</p>
<script>
async function call(name, url, init) {
  const entry = {name: name, url: url, method: init.method || "GET"};
  try {
    const response = await fetch(url, init);
    entry.ok = true;
    entry.status = response.status;
    entry.headers = {};
    response.headers.forEach(function (value, key) { entry.headers[key] = value; });
    entry.wwwAuthenticate = response.headers.get("www-authenticate");
    entry.sessionId = response.headers.get("mcp-session-id");
    entry.protocolVersionHeader = response.headers.get("mcp-protocol-version");
    entry.body = await response.text();
  } catch (error) {
    entry.ok = false;
    entry.errorName = error.name;
    entry.errorMessage = String(error.message);
  }
  return entry;
}

window.runDiscovery = async function (options) {
  const rs = options.resourceServer;
  const version = options.protocolVersion;
  document.getElementById("status").textContent = "running";
  const discovery = {headers: {"mcp-protocol-version": version}, cache: "no-store"};
  const initialize = JSON.stringify({
    jsonrpc: "2.0", id: 1, method: "initialize",
    params: {protocolVersion: version, capabilities: {}, clientInfo: {name: "browser-test-page", version: "1.0"}}
  });
  const mcpHeaders = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": version,
    "mcp-method": "initialize"
  };
  const withToken = Object.assign({}, mcpHeaders, {authorization: "Bearer " + options.token});
  const results = [];
  results.push(await call("protected-resource", rs + "/.well-known/oauth-protected-resource/mcp", discovery));
  results.push(await call("authorization-server", rs + "/.well-known/oauth-authorization-server", discovery));
  results.push(await call("openid-configuration", rs + "/.well-known/openid-configuration", discovery));
  results.push(await call("mcp-without-token", rs + "/mcp",
    {method: "POST", headers: mcpHeaders, body: initialize, cache: "no-store"}));
  results.push(await call("mcp-with-token", rs + "/mcp",
    {method: "POST", headers: withToken, body: initialize, cache: "no-store"}));
  window.discoveryResults = results;
  document.getElementById("status").textContent = "done";
  const summary = results.map(function (r) { return [r.name, r.status || r.errorName]; });
  console.log("discovery done: " + JSON.stringify(summary));
  return results;
};
</script>
</body>
</html>
"""

HELLO_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Control frame</title></head>
<body><p id="hello">This control page renders inside a frame.</p></body></html>
"""

CALLBACK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test client</title></head>
<body><p id="callback">The test client received the authorization response.</p></body></html>
"""


def frame_page(epicme_src: str, control_src: str) -> str:
    epicme = html.escape(epicme_src, quote=True)
    control = html.escape(control_src, quote=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A page that frames EpicMe</title></head>
<body>
<h1>A page that frames EpicMe</h1>
<iframe id="epicme" title="EpicMe" src="{epicme}" width="480" height="520"></iframe>
<iframe id="control" title="Control" src="{control}" width="480" height="120"></iframe>
</body></html>
"""


class PageSite:
    """The site; `callbacks` holds the query of every request to `/callback`, in order."""

    def __init__(self) -> None:
        self.callbacks: list[dict[str, str]] = []
        self.app = Starlette(
            routes=[
                Route("/", self._discovery),
                Route("/frame", self._frame),
                Route("/hello", self._hello),
                Route("/callback", self._callback),
                # Without it Chrome's favicon request logs a 404 on the page's console.
                Route("/favicon.ico", self._favicon),
            ]
        )

    async def _discovery(self, request: Request) -> Response:
        return HTMLResponse(DISCOVERY_PAGE)

    async def _frame(self, request: Request) -> Response:
        return HTMLResponse(frame_page(request.query_params["epicme"], request.query_params["control"]))

    async def _hello(self, request: Request) -> Response:
        return HTMLResponse(HELLO_PAGE)

    async def _callback(self, request: Request) -> Response:
        self.callbacks.append(dict(request.query_params))
        return HTMLResponse(CALLBACK_PAGE)

    async def _favicon(self, request: Request) -> Response:
        return Response(status_code=204)
