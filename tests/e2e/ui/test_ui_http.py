"""The web UI over HTTP: its files, headers, CSP, redirect, 404s, and what the page may load."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import CSP_BY_LEVEL, ApiOptions
from agentmesh.api.ui import STATIC
from agentmesh.cli.up import ui_link
from agentmesh.security.rbac import OPERATION_PERMISSIONS, ROLE_PERMISSIONS
from agentmesh.security.tokens import token_service_from_settings
from tests.unit.api.conftest import Api, make_settings, running

pytestmark = pytest.mark.e2e
UI_DIR = Path(__file__).resolve().parents[3] / "src" / "agentmesh" / "api" / "ui"
FILES = {
    "/ui/": "text/html; charset=utf-8",
    "/ui/index.html": "text/html; charset=utf-8",
    "/ui/app.js": "text/javascript; charset=utf-8",
    "/ui/app.css": "text/css; charset=utf-8",
}


@pytest.fixture(params=list(CSP_BY_LEVEL))
async def level_api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    app = create_app(
        make_settings(tmp_path, environment=request.param),
        options=ApiOptions(rate_limit_enabled=False),
    )
    async for a in running(app):
        yield a


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    app = create_app(make_settings(tmp_path), options=ApiOptions(rate_limit_enabled=False))
    async for a in running(app):
        yield a


async def test_the_files_carry_their_types_and_the_levels_headers(level_api: Api) -> None:
    level = level_api.ctx.level
    for path, content_type in FILES.items():
        r = await level_api.client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"] == content_type, path
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert r.headers["X-API-Security-Level"] == level.name
        assert r.headers.get("Content-Security-Policy") == level.csp, path
    html = (await level_api.client.get("/ui/")).text
    assert html == (UI_DIR / "index.html").read_text()
    assert (await level_api.client.get("/ui/app.js")).text == (UI_DIR / "app.js").read_text()


async def test_ui_redirects_and_unknown_assets_are_flat_404s(level_api: Api) -> None:
    r = await level_api.client.get("/ui", follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"] == "/ui/"
    for path in ("/ui/nope.js", "/ui/__init__.py", "/ui/../config.py", "/ui/sub/app.js"):
        r = await level_api.client.get(path)
        assert r.status_code == 404, path
        assert set(r.json()) == {"error", "code"}
        assert r.json()["code"] == "NOT_FOUND"
    r = await level_api.client.post("/ui/app.js")
    assert r.status_code == 405
    assert set(r.json()) == {"error", "code"}
    assert "GET" in r.headers["allow"]
    assert not [p for p in level_api.app.openapi()["paths"] if p.startswith("/ui")]


class _Refs(HTMLParser):
    """Every URL the page names, and anything inline a CSP would block."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for key, value in attrs:
            if key in ("src", "href", "action", "poster", "srcset") and value is not None:
                self.urls.append(value)
            if key.startswith("on") or key == "style":
                self.inline.append(f"{tag} {key}")
        if tag == "style":
            self.inline.append("style element")
        if tag == "script":
            if "src" not in named:
                self.inline.append("inline script")
            assert named.get("type") == "module"

    def handle_data(self, data: str) -> None:
        return None


async def test_the_page_loads_only_same_origin_assets_and_nothing_inline(api: Api) -> None:
    html = (await api.client.get("/ui/")).text
    refs = _Refs()
    refs.feed(html)
    assert refs.inline == []
    assets = [u for u in refs.urls if not u.startswith("#")]
    assert {"app.js", "app.css"} <= set(assets)
    for url in assets:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("", ""), url  # relative: this origin only
        r = await api.client.get(urljoin("/ui/", url))
        assert r.status_code == 200, url
    js = (UI_DIR / "app.js").read_text()
    css = (UI_DIR / "app.css").read_text()
    # data reaches the DOM as text only, and nothing is fetched from elsewhere
    for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert banned not in js, banned
    assert "new Function" not in js
    assert not re.search(r"""["'`](https?:|wss?:)?//""", js)
    assert "@import" not in css
    assert "url(" not in css
    assert set(STATIC) == {p.name for p in UI_DIR.iterdir() if p.suffix != ".py" and p.is_file()}


async def test_config_is_the_servers_permission_table(api: Api) -> None:
    config = (await api.client.get("/ui/config.json")).json()
    assert config["roles"] == {
        r.value: sorted(p.value for p in perms) for r, perms in ROLE_PERMISSIONS.items()
    }
    assert config["operations"] == {k: v.value for k, v in OPERATION_PERMISSIONS.items()}
    assert config["platform_tenant"] == "_system"
    assert "PAUSED" in config["agent_statuses"]
    assert "dead_lettered" in config["task_statuses"]
    assert "agent_created" in config["audit_actions"]


def test_the_websocket_accepts_its_own_origin_and_refuses_others(tmp_path: Path) -> None:
    app = create_app(
        make_settings(tmp_path, environment="production"),
        options=ApiOptions(rate_limit_enabled=False),
    )
    with TestClient(app) as client:  # its WebSocket requests go to ws://testserver
        token = app.state.ctx.tokens.create("alice", "acme", ["observer"])
        with client.websocket_connect("/ws", headers={"origin": "http://testserver"}) as ws:
            ws.send_json({"type": "auth", "data": {"token": token}})
            assert ws.receive_json()["type"] == "connect"
            assert ws.receive_json()["data"]["status"] == "authenticated"
        for origin in ("http://evil.example", "https://testserver", "http://testserver:9"):
            with (
                pytest.raises(WebSocketDisconnect) as refused,
                client.websocket_connect("/ws", headers={"origin": origin}),
            ):
                pass
            assert refused.value.code == 1008, origin


def test_up_prints_a_sign_in_link_only_in_development(tmp_path: Path) -> None:
    dev = make_settings(tmp_path, environment="development")
    link = ui_link(dev, "http://127.0.0.1:8000", "demo")
    url, _, token = link.partition("#token=")
    assert url == "http://127.0.0.1:8000/ui/"
    claims = token_service_from_settings(dev).verify(token)
    assert (claims.tenant_id, claims.roles) == ("demo", ("admin",))
    for level in ("testing", "staging", "production"):
        settings = make_settings(tmp_path, environment=level)
        assert ui_link(settings, "http://h:1", "demo") == "http://h:1/ui/"
