"""The task and agent detail views: payload, result, the lifecycle timeline, attempts,
the agent's counters, recent tasks and heartbeat age, all kept live over /ws."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from agentmesh.commands import CompleteTask, RunTask
from tests.e2e.ui.conftest import Plane, start_plane
from tests.e2e.ui.test_ui_browser import (  # noqa: F401  (browser and open_tab are fixtures)
    OpenTab,
    agent_row,
    browser,
    open_tab,
    signed_in,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    served = start_plane(tmp_path_factory.mktemp("ui-detail"), "development")
    yield served
    served.stop()


def test_task_and_agent_details_follow_the_lifecycle_live(
    plane: Plane,
    open_tab: OpenTab,  # noqa: F811 - the fixture
) -> None:
    with plane.client("acme", "admin") as c:
        r = c.post(
            "/v1/tenants/acme/tasks",
            json={"capability": "summarize", "payload": {"text": "detail please"}},
        )
        assert r.status_code == 201, r.text
        task_id = r.json()["task_id"]
    tab = signed_in(open_tab, plane, "acme", "admin", sub="dora")
    page = tab.page
    page.click("a[data-view=tasks]")
    page.locator(f'#tasks-table tr[data-id="{task_id}"] td.id').first.click()
    dialog = page.locator("#detail")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("detail please")
    steps = dialog.locator("ol.timeline li")
    expect(steps).to_have_count(2)  # submitted, offered

    bus = plane.ctx.bus
    plane.on_loop(bus.execute(RunTask("acme", task_id, "worker-1", 1)))
    expect(dialog.locator('ol.timeline li[data-status="running"]')).to_contain_text("worker-1")
    plane.on_loop(bus.execute(CompleteTask("acme", task_id, {"summary": "done, live"})))
    expect(dialog.locator('ol.timeline li[data-status="completed"]')).to_be_visible()
    expect(dialog).to_contain_text("done, live")
    expect(steps).to_have_count(5)
    page.keyboard.press("Escape")

    page.click("a[data-view=agents]")
    agent_row(page, "worker-1").locator("td.id").first.click()
    expect(dialog).to_contain_text("1 assigned, 1 done, 0 failed")
    expect(dialog.locator("#agent-recent-tasks")).to_contain_text(task_id)
    tab.check_clean()
