"""The web UI in a real browser (Debian's Chromium, headless, driven by Playwright) against
a live control plane: sign-in, tables, actions, the task form, live updates, roles, CSP.

Chromium comes from the system (``make test`` installs the Debian package when missing);
Playwright never downloads a browser. Under ``CI=true`` a missing Chromium fails the run.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    WebSocketRoute,
    expect,
    sync_playwright,
)

from agentmesh.api.options import CSP_BY_LEVEL
from agentmesh.security.rbac import PLATFORM_TENANT
from tests.e2e.ui.conftest import Plane, start_plane
from tests.unit.api.conftest import agent_body

pytestmark = pytest.mark.e2e
TIMEOUT_MS = 5000


def chromium_path() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        pytest.fail("Chromium is not installed: run `make chromium` (make test does it)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """The strictest level: production CSP, rate limit on, origins that are not this host."""
    served = start_plane(tmp_path_factory.mktemp("ui"), "production")
    yield served
    served.stop()


@dataclass
class Tab:
    """A page in its own browser context, with every console error and page error."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def check_clean(self) -> None:
        assert self.errors == [], self.errors


OpenTab = Callable[..., Tab]


@pytest.fixture
def open_tab(browser: Browser) -> Iterator[OpenTab]:
    contexts: list[BrowserContext] = []

    def open_(url: str, *, route_ws: Callable[[WebSocketRoute], None] | None = None) -> Tab:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        tab = Tab(page)
        page.on(
            "console",
            lambda m: tab.errors.append(m.text) if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: tab.errors.append(f"page error: {e}"))
        if route_ws is not None:
            page.route_web_socket("**/ws", route_ws)
        page.goto(url)
        return tab

    yield open_
    for context in contexts:
        context.close()


def signed_in(
    open_tab: OpenTab, plane: Plane, tenant: str, *roles: str, sub: str, **kw: object
) -> Tab:
    tab = open_tab(f"{plane.url}/ui/#token={plane.token(tenant, *roles, sub=sub)}", **kw)
    expect(tab.page.locator("#live")).to_have_attribute("data-state", "live")
    return tab


def agent_row(page: Page, agent_id: str) -> Locator:
    return page.locator(f'#agents-table tr[data-id="{agent_id}"]')


def connections(plane: Plane, sub: str) -> set[str]:
    async def ids() -> set[str]:
        hub = plane.ctx.hub
        return {c.id for c in hub.connections.values() if c.principal.subject == sub}

    found: set[str] = plane.on_loop(ids())
    return found


def test_an_admin_signs_in_pauses_submits_and_sees_live_rows(
    plane: Plane, open_tab: OpenTab
) -> None:
    token = plane.token("acme", "admin", sub="alice")
    tab = open_tab(f"{plane.url}/ui/#token={token}")
    page = tab.page
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    # the token left the address bar for session storage
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('agentmesh.token')") == token
    expect(page.locator("#whoami")).to_have_text("alice · acme · admin")
    expect(page.locator("#tenant-figures")).to_contain_text("Agents")

    page.click("a[data-view=agents]")
    row = agent_row(page, "worker-1")
    expect(row.locator("[data-status]")).to_have_text("AVAILABLE")
    expect(page.locator("#live-agents")).to_be_hidden()  # no broker: nobody heard by heartbeat
    row.get_by_role("button", name="Pause").click()
    expect(row.locator("[data-status]")).to_have_text("PAUSED")
    expect(agent_row(page, "worker-1").get_by_role("button", name="Resume")).to_be_visible()
    with plane.client("acme", "observer") as c:
        assert c.get("/v1/tenants/acme/agents/worker-1").json()["status"] == "PAUSED"

    # another client registers an agent: its row arrives over the WebSocket, no reload
    page.evaluate("window.__sameDocument = true")
    with plane.client() as root:
        assert root.post("/v1/tenants/acme/agents", json=agent_body("worker-2")).status_code == 201
    expect(agent_row(page, "worker-2").locator("[data-status]")).to_have_text("AVAILABLE")
    with plane.client() as root:
        r = root.post("/v1/tenants/acme/agents/worker-2/pause", json={})
        assert r.status_code == 200
    expect(agent_row(page, "worker-2").locator("[data-status]")).to_have_text("PAUSED")
    assert page.evaluate("window.__sameDocument") is True

    page.click("a[data-view=tasks]")
    expect(page.locator("#tasks-table td.placeholder")).to_have_text(
        "No tasks yet: submit one above."
    )
    page.fill("#task-capability", "summarize")
    page.fill("#task-payload", '{"text": oops}')
    page.click("#task-form button[type=submit]")
    expect(page.locator("#task-form-error")).to_contain_text("Payload is not valid JSON")
    page.fill("#task-payload", '{"text": "hello from the UI"}')
    page.select_option("#task-priority", "high")
    page.click("#task-form button[type=submit]")
    expect(page.locator("#task-form-error")).to_be_hidden()
    with plane.client("acme", "observer") as c:
        tasks = c.get("/v1/tenants/acme/tasks").json()["tasks"]
    assert [(t["payload"], t["priority"]) for t in tasks] == [({"text": "hello from the UI"}, 4)]
    task_row = page.locator(f'#tasks-table tr[data-id="{tasks[0]["task_id"]}"]')
    expect(task_row).to_contain_text("summarize")
    expect(task_row).to_contain_text("high")
    expect(page.locator("#message")).to_contain_text(f"Task {tasks[0]['task_id']} submitted")
    assert page.evaluate("window.__sameDocument") is True
    tab.check_clean()


def test_an_api_refusal_is_one_line_with_the_apis_text(plane: Plane, open_tab: OpenTab) -> None:
    """The page misses the update that terminated worker-3 (the socket drops it), so it
    still offers Pause; the API's 409 text is what the operator reads."""
    with plane.client() as root:
        assert root.post("/v1/tenants/acme/agents", json=agent_body("worker-3")).status_code == 201

    def drop_worker_3_updates(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def forward(message: str | bytes) -> None:
            if "worker-3" not in str(message):
                ws.send(message)

        server.on_message(forward)

    tab = signed_in(
        open_tab, plane, "acme", "orchestrator", sub="carol", route_ws=drop_worker_3_updates
    )
    page = tab.page
    page.click("a[data-view=agents]")
    expect(agent_row(page, "worker-3").locator("[data-status]")).to_have_text("AVAILABLE")
    with plane.client() as root:
        assert root.post("/v1/tenants/acme/agents/worker-3/terminate", json={}).status_code == 200
        refusal = root.post("/v1/tenants/acme/agents/worker-3/pause", json={}).json()
    agent_row(page, "worker-3").get_by_role("button", name="Pause").click()
    message = page.locator("#message")
    expect(message).to_have_attribute("data-kind", "error")
    expect(message).to_contain_text(refusal["error"])
    expect(message).to_contain_text(refusal["code"])
    assert tab.errors  # the browser logged the failed request (409)
    assert all("409" in e for e in tab.errors), tab.errors


def test_an_observer_sees_no_controls(plane: Plane, open_tab: OpenTab) -> None:
    with plane.client() as root:
        r = root.post("/v1/tenants/acme/tasks", json={"capability": "translate", "payload": {}})
        assert r.status_code == 201
    tab = open_tab(f"{plane.url}/ui")  # redirected to /ui/, signed out
    page = tab.page
    expect(page.locator("#view-signin")).to_be_visible()
    page.fill("#token-input", "not-a-jwt")
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("three dot-separated parts")
    page.fill("#token-input", f"Bearer {plane.token('acme', 'observer', sub='olga')}\n")
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#whoami")).to_have_text("olga · acme · observer")
    expect(page.locator('#nav a[data-view="audit"]')).to_be_hidden()
    page.click("a[data-view=agents]")
    row = agent_row(page, "worker-1")
    expect(row).to_be_visible()
    expect(row.locator("button")).to_have_count(0)
    expect(page.locator("#agents-table button")).to_have_count(0)
    page.click("a[data-view=tasks]")
    expect(page.locator("#task-submit")).to_be_hidden()
    expect(page.locator("#tasks-table tbody tr.row")).not_to_have_count(0)
    expect(page.locator("#tasks-table button")).to_have_count(0)
    page.click("#sign-out")
    expect(page.locator("#view-signin")).to_be_visible()
    expect(page.locator("#live")).to_have_attribute("data-state", "offline")
    assert page.evaluate("sessionStorage.getItem('agentmesh.token')") is None
    tab.check_clean()


def test_a_platform_admin_picks_a_tenant(plane: Plane, open_tab: OpenTab) -> None:
    tab = signed_in(open_tab, plane, PLATFORM_TENANT, "admin", sub="root")
    page = tab.page
    page.click("a[data-view=agents]")
    expect(page.locator("#agents-table td.placeholder")).to_have_text(
        "No agents in this tenant yet."
    )
    expect(page.locator("#tenant-select option[value=acme]")).to_have_text("Acme (acme)")
    page.select_option("#tenant-select", "acme")
    expect(agent_row(page, "worker-1")).to_be_visible()
    # the live subscription followed the pick
    with plane.client() as root:
        assert root.post("/v1/tenants/acme/agents", json=agent_body("worker-4")).status_code == 201
    expect(agent_row(page, "worker-4")).to_be_visible()
    tab.check_clean()


def test_the_socket_answers_pings_and_reconnects(plane: Plane, open_tab: OpenTab) -> None:
    """Pings every 0.5 s with a 1 s pong timeout: an unanswered ping would close the socket."""
    tab = signed_in(open_tab, plane, "acme", "observer", sub="pinger")
    first = connections(plane, "pinger")
    assert len(first) == 1
    time.sleep(2.2)
    assert connections(plane, "pinger") == first
    expect(tab.page.locator("#live")).to_have_attribute("data-state", "live")

    plane.on_loop(plane.ctx.hub.close_all("restart"))
    expect(tab.page.locator("#live")).to_have_attribute("data-state", "reconnecting")
    expect(tab.page.locator("#live")).to_have_attribute("data-state", "live")
    second = connections(plane, "pinger")
    assert len(second) == 1
    assert second != first
    tab.check_clean()


@pytest.mark.parametrize("environment", list(CSP_BY_LEVEL))
def test_every_security_level_runs_the_page(
    environment: str, tmp_path: Path, open_tab: OpenTab
) -> None:
    served = start_plane(tmp_path, environment)
    try:
        token = served.token("acme", "admin")
        tab = open_tab(f"{served.url}/ui/#token={token}")
        page = tab.page
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        page.click("a[data-view=agents]")
        expect(agent_row(page, "worker-1")).to_be_visible()
        page.click("a[data-view=audit]")
        expect(page.locator("#audit-table tbody tr.row")).not_to_have_count(0)
        csp = page.evaluate(
            "fetch('/ui/', {cache: 'no-store'}).then(r => r.headers.get('content-security-policy'))"
        )
        assert csp == CSP_BY_LEVEL[environment]
        tab.check_clean()  # no CSP violation, no script error
        expect(page.locator("[style]")).to_have_count(0)
    finally:
        served.stop()


DASH = "\u2013"  # the en dash of the pager's "from-to" note


def test_the_task_pager_follows_cursors_both_ways(plane: Plane, open_tab: OpenTab) -> None:
    with plane.client("paged", "admin") as c:
        tasks = [{"capability": "summarize", "task_id": f"paged-{i:02d}"} for i in range(45)]
        assert c.post("/v1/tenants/paged/tasks:batch", json={"tasks": tasks}).status_code == 201
        newest = [t["task_id"] for t in c.get("/v1/tenants/paged/tasks?limit=45").json()["tasks"]]
    page = signed_in(open_tab, plane, "paged", "admin", sub="pager").page
    page.click("a[data-view=tasks]")
    pager = page.locator("#tasks-pager")
    rows = page.locator("#tasks-table tbody tr.row")
    expect(pager).to_contain_text(f"1{DASH}20 of 45")
    expect(rows.first).to_have_attribute("data-id", newest[0])
    pager.get_by_role("button", name="Next").click()
    expect(pager).to_contain_text(f"21{DASH}40 of 45")
    expect(rows.first).to_have_attribute("data-id", newest[20])
    pager.get_by_role("button", name="Next").click()
    expect(pager).to_contain_text(f"41{DASH}45 of 45")
    expect(rows).to_have_count(5)
    expect(rows.last).to_have_attribute("data-id", newest[44])
    expect(pager.get_by_role("button", name="Next")).to_be_disabled()
    pager.get_by_role("button", name="Previous").click()
    expect(pager).to_contain_text(f"21{DASH}40 of 45")
    expect(rows.first).to_have_attribute("data-id", newest[20])
