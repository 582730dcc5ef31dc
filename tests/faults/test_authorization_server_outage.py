"""The authorization server stops: the resource server carries on with what it cached.

- tokens keep verifying against the cached JWKS (including one it had never seen before);
- `/.well-known/oauth-authorization-server` at the resource server still answers with its copy;
- a resource server that never saw the authorization server answers a clear 502, not a 401 that
  would make clients throw away good tokens;
- the authorization server restarted on the same store signs with the same persisted key, so
  tokens issued before the outage still verify, even at a resource server fetching keys afresh.

Real processes throughout: EpicMe's own authorization server and resource server, `epicme serve`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx2
import jwt

from tests.support.processes import (
    Account,
    Deployment,
    call_tool,
    create_accounts,
    issue_tokens,
    stop_all,
    tool_result,
)
from tests.support.servers import free_port

ACCOUNT = Account("outage@example.com", "outage test password")
METADATA = "/.well-known/oauth-authorization-server"
# After a failed fetch the resource server waits 2 s before asking the upstream again (upstream.py).
RECOVERY_BOUND = 10.0


async def whoami(http: httpx2.AsyncClient, mcp_url: str, token: str) -> dict[str, object]:
    return tool_result(await call_tool(http, mcp_url, token, "whoami", {}))


def assert_clear_502(response: httpx2.Response) -> None:
    assert response.status_code == 502, response.text
    assert response.headers["retry-after"]
    body = response.json()
    assert body["error"] == "temporarily_unavailable"
    assert "could not be reached" in body["error_description"], body


async def test_resource_server_rides_out_an_authorization_server_outage(sqlite_url: str, tmp_path: Path) -> None:
    user_ids = await create_accounts(sqlite_url, [ACCOUNT])
    deployment = Deployment.on_free_ports(sqlite_url)
    auth_server = deployment.authorization_server(tmp_path)
    resource_server = deployment.resource_server(tmp_path)
    # A second replica of the same resource, started only once the authorization server is
    # down: it holds no copy of anything. Reached on its own port with the public Host.
    cold_port = free_port()
    cold_url = f"http://127.0.0.1:{cold_port}"
    cold_mcp = cold_url + "/mcp"
    cold_server = deployment.resource_server(tmp_path, "cold-resource-server", port=cold_port)
    public_host = {"Host": f"127.0.0.1:{deployment.rs_port}"}
    try:
        await auth_server.start()
        await resource_server.start()
        used, unused = (
            t["access_token"] for t in await issue_tokens(deployment.as_url, deployment.mcp_url, ACCOUNT, 2)
        )
        async with httpx2.AsyncClient(timeout=15) as http:
            # The resource server fetches the metadata and the JWKS while the AS is up.
            assert (await whoami(http, deployment.mcp_url, used))["userId"] == user_ids[ACCOUNT.email]
            metadata = await http.get(deployment.rs_url + METADATA)
            assert metadata.status_code == 200
            assert metadata.json()["issuer"] == deployment.as_url

            await auth_server.stop()
            assert not auth_server.running
            try:
                await http.get(deployment.as_url + "/healthcheck")
                raise AssertionError("the authorization server still answers")
            except httpx2.ConnectError:
                pass

            # Valid tokens still verify from the cached JWKS: one already seen, and one never
            # presented before (so not merely a remembered verification).
            assert (await whoami(http, deployment.mcp_url, used))["userId"] == user_ids[ACCOUNT.email]
            assert (await whoami(http, deployment.mcp_url, unused))["userId"] == user_ids[ACCOUNT.email]
            created = tool_result(
                await call_tool(http, deployment.mcp_url, unused, "create_entry", {"title": "offline", "content": "."})
            )
            # A forged token is still refused: the outage does not turn verification off.
            forged = jwt.encode({"sub": "x", "aud": deployment.mcp_url}, "k" * 32, algorithm="HS256")
            refused = await call_tool(http, deployment.mcp_url, forged, "whoami", {})
            assert refused.status_code == 401

            # The cached copy of the metadata, byte for byte.
            stale = await http.get(deployment.rs_url + METADATA)
            assert stale.status_code == 200
            assert stale.content == metadata.content

            # A resource server with no copy answers 502 with a clear JSON body, for the metadata
            # and for a token it cannot check (never 401: the token may well be good).
            await cold_server.start()
            assert_clear_502(await http.get(cold_url + METADATA, headers=public_host))
            assert_clear_502(await call_tool(http, cold_mcp, used, "whoami", {}, headers=public_host))

            # Restarted on the same store: the same signing key, so earlier tokens verify, also at
            # the resource server that fetches the JWKS for the first time now.
            await auth_server.start()
            (fresh,) = (
                t["access_token"] for t in await issue_tokens(deployment.as_url, deployment.mcp_url, ACCOUNT, 1)
            )
            assert jwt.get_unverified_header(fresh)["kid"] == jwt.get_unverified_header(used)["kid"]
            jwks = (await http.get(metadata.json()["jwks_uri"])).json()
            assert jwt.get_unverified_header(used)["kid"] in {key["kid"] for key in jwks["keys"]}
            # The cold replica asks the upstream again once its short failure back-off is over;
            # until then it keeps answering 502, never 401.
            deadline = time.monotonic() + RECOVERY_BOUND
            while (
                answer := await call_tool(http, cold_mcp, used, "whoami", {}, headers=public_host)
            ).status_code != 200:
                assert_clear_502(answer)
                assert time.monotonic() < deadline, "the cold replica did not recover"
                await asyncio.sleep(0.2)
            for token in (used, unused, fresh):
                assert (await whoami(http, deployment.mcp_url, token))["userId"] == user_ids[ACCOUNT.email]
                cold_answer = await call_tool(http, cold_mcp, token, "whoami", {}, headers=public_host)
                assert tool_result(cold_answer)["userId"] == user_ids[ACCOUNT.email]
            assert (await http.get(cold_url + METADATA, headers=public_host)).content == metadata.content
            entry = tool_result(await call_tool(http, deployment.mcp_url, fresh, "get_entry", {"id": created["id"]}))
            assert entry["title"] == "offline"
    finally:
        await stop_all(cold_server, resource_server, auth_server)
