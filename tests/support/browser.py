"""A scripted user agent: signs in and consents on EpicMe's real pages over HTTP.

It reads forms out of the served HTML (hidden fields and ticked checkboxes) and posts them back, the
way a browser would, keeping cookies between requests. The person may untick checkboxes first.
"""

from __future__ import annotations

from collections.abc import Collection
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append({"action": attributes.get("action", ""), "fields": {}})
        elif tag == "input" and self.forms and attributes.get("type") in ("hidden", "checkbox"):
            if attributes.get("type") == "checkbox" and "checked" not in attributes:
                return
            checkboxes = self.forms[-1].setdefault("checkboxes", [])
            assert isinstance(checkboxes, list)
            name, value = attributes.get("name", ""), attributes.get("value", "on")
            if attributes.get("type") == "checkbox":
                checkboxes.append((name, value, "disabled" in attributes))
                return
            fields = self.forms[-1]["fields"]
            assert isinstance(fields, dict)
            fields[name] = value


def parse_forms(html: str) -> list[dict[str, object]]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def hidden_fields(html: str, action_endswith: str) -> tuple[str, dict[str, str]]:
    action, fields, _ = form_fields(html, action_endswith)
    return action, fields


def form_fields(html: str, action_endswith: str) -> tuple[str, dict[str, str], list[tuple[str, str, bool]]]:
    """A form's action, its hidden fields, and its ticked checkboxes as (name, value, disabled)."""
    for form in parse_forms(html):
        action = str(form["action"])
        if action.endswith(action_endswith):
            fields, checkboxes = form["fields"], form.get("checkboxes", [])
            assert isinstance(fields, dict) and isinstance(checkboxes, list)
            return action, dict(fields), list(checkboxes)
    raise AssertionError(f"no form posting to {action_endswith} in page:\n{html[:2000]}")


class Browser:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx2.AsyncClient(follow_redirects=False, timeout=10)
        self.consent_pages: list[str] = []

    async def aclose(self) -> None:
        await self.http.aclose()

    async def get(self, url: str) -> httpx2.Response:
        return await self.http.get(urljoin(self.base_url, url))

    async def sign_in(self, login_page: httpx2.Response, email: str, password: str) -> httpx2.Response:
        action, fields = hidden_fields(login_page.text, "/login")
        fields.update(email=email, password=password)
        return await self.http.post(urljoin(self.base_url, action), data=fields)

    async def decide(
        self, consent_page: httpx2.Response, decision: str, untick: Collection[str] = ()
    ) -> httpx2.Response:
        """Submit the consent form as a browser would: hidden fields, the checkboxes still ticked
        (disabled ones are never sent), and the button pressed."""
        action, fields, checkboxes = form_fields(consent_page.text, "/authorize")
        data: dict[str, str | list[str]] = {**fields, "decision": decision}
        for name, value, disabled in checkboxes:
            if not disabled and value not in untick:
                ticked = data.setdefault(name, [])
                assert isinstance(ticked, list)
                ticked.append(value)
        return await self.http.post(urljoin(self.base_url, action), data=data)

    async def authorize(
        self,
        authorization_url: str,
        email: str,
        password: str,
        *,
        decision: str = "allow",
        untick: Collection[str] = (),
    ) -> str:
        """Follow an authorization URL through sign-in and consent, unticking the scopes named in
        `untick`; returns the client redirect. `consent_pages` keeps each consent page seen."""
        response = await self.http.get(authorization_url)
        for _ in range(8):
            if response.status_code in (302, 303):
                location = response.headers["location"]
                target = urljoin(str(response.url), location)
                if not target.startswith(self.base_url):
                    return target
                response = await self.http.get(target)
                continue
            assert response.status_code == 200, f"{response.status_code}: {response.text[:1500]}"
            if 'action="/login"' in response.text:
                response = await self.sign_in(response, email, password)
            elif 'name="decision"' in response.text:
                self.consent_pages.append(response.text)
                response = await self.decide(response, decision, untick)
            else:
                raise AssertionError(f"unexpected page:\n{response.text[:1500]}")
        raise AssertionError("too many steps")


def redirect_params(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
