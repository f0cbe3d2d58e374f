"""The approvals page in a real browser (system Chromium via Playwright) against a live
control plane under the production CSP: the full context of a pending approval, approve
with edited arguments, a new request arriving live over /ws, reject with a reason, and
an observer who sees no decision controls."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.ui import test_ui_browser as shared
from tests.e2e.ui.conftest import Plane
from tests.e2e.ui.test_ui_browser import OpenTab, signed_in

pytestmark = pytest.mark.e2e
browser = shared.browser  # the browser tests' fixtures: one Chromium, a plane, fresh tabs
plane = shared.plane
open_tab = shared.open_tab


def _gated(plane: Plane, payload: dict[str, Any]) -> str:
    with plane.client("acme", "orchestrator", sub="bob") as c:
        r = c.post(
            "/v1/tenants/acme/tasks",
            json={"capability": "payout", "payload": payload, "requires_approval": True},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["task_id"])


def test_an_approver_decides_on_the_approvals_page(plane: Plane, open_tab: OpenTab) -> None:
    first = _gated(plane, {"amount": 5, "to": "acct-1"})
    tab = signed_in(open_tab, plane, "acme", "approver", sub="carol")
    page = tab.page
    page.click("a[data-view=approvals]")
    row = page.locator(f'#approvals-table tr[data-id="{first}__a1"]')
    expect(row).to_contain_text("task payout")
    expect(row).to_contain_text("requested at submission")
    row.click()
    expect(page.locator("#approval-title")).to_have_text(f"Approval {first}__a1")
    expect(page.locator("#approval-args")).to_contain_text('"amount": 5')
    expect(page.locator("#approval-fields")).to_contain_text("bob")
    page.fill("#approval-edits", '{"amount": 4, "to": oops}')
    page.click("#approval-approve")
    expect(page.locator("#approval-error")).to_contain_text("not valid JSON")
    page.fill("#approval-edits", '{"amount": 4, "to": "acct-1"}')
    page.fill("#approval-comment", "four is enough")
    page.click("#approval-approve")
    expect(page.locator("#message")).to_contain_text(f"Approval {first}__a1 approved")
    expect(page.locator("#approval-fields")).to_contain_text("approved by carol: four is enough")
    expect(page.locator("#approval-form")).to_be_hidden()
    expect(row).to_have_count(0)
    with plane.client("acme", "observer") as c:
        task = c.get(f"/v1/tenants/acme/tasks/{first}").json()
    assert task["status"] == "offered"
    assert task["payload"] == {"amount": 4, "to": "acct-1"}

    # a new request arrives live, without a reload
    page.evaluate("window.__sameDocument = true")
    second = _gated(plane, {"amount": 900, "to": "acct-9"})
    row2 = page.locator(f'#approvals-table tr[data-id="{second}__a1"]')
    expect(row2).to_contain_text("acct-9")
    row2.click()
    expect(page.locator("#approval-title")).to_have_text(f"Approval {second}__a1")
    page.fill("#approval-comment", "far too much")
    page.click("#approval-reject")
    expect(page.locator("#message")).to_contain_text(f"Approval {second}__a1 rejected")
    assert page.evaluate("window.__sameDocument") is True
    with plane.client("acme", "observer") as c:
        task = c.get(f"/v1/tenants/acme/tasks/{second}").json()
    assert task["status"] == "rejected"
    assert "far too much" in task["error"]
    tab.check_clean()


def test_an_observer_sees_the_context_but_no_decision(plane: Plane, open_tab: OpenTab) -> None:
    third = _gated(plane, {"amount": 1})
    tab = signed_in(open_tab, plane, "acme", "observer", sub="olga")
    page = tab.page
    page.click("a[data-view=approvals]")
    page.locator(f'#approvals-table tr[data-id="{third}__a1"]').click()
    expect(page.locator("#approval-args")).to_contain_text('"amount": 1')
    expect(page.locator("#approval-form")).to_be_hidden()
    tab.check_clean()
