"""The overview's live charts in a real browser: SVG drawn from the control plane's own
per-second figures (GET /v1/tenants/{t}/metrics/history), nothing from another origin.
The screenshot is kept in ``test-artifacts/ui-charts.png`` (``TEST_ARTIFACTS`` to move it)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.ui import test_ui_browser as ui
from tests.e2e.ui.conftest import Plane, start_plane
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[3]
browser = ui.browser  # the module's Chromium and tabs
open_tab = ui.open_tab
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    served = start_plane(tmp_path_factory.mktemp("ui-charts"), "production")
    yield served
    served.stop()


def test_the_overview_charts_draw_the_tenants_figures(plane: Plane, open_tab: ui.OpenTab) -> None:
    tab = ui.signed_in(open_tab, plane, "acme", "admin", sub="charts")
    page = tab.page
    with plane.client("acme", "admin", sub="charts") as client:
        for i in range(6):  # tasks wait (no agent runs here): the queue depth rises
            r = client.post(
                "/v1/tenants/acme/tasks", json={"capability": "nobody", "payload": {"i": i}}
            )
            assert r.status_code == 201, r.text
        history = wait_until(
            lambda: (
                doc
                if len((doc := client.get("/v1/tenants/acme/metrics/history").json())["points"])
                >= 3
                and doc["points"][-1]["queue_depth"] >= 6
                else None
            ),
            20,
            "three seconds of figures with the waiting tasks",
        )
    assert all(p["failed"] == 0 for p in history["points"])
    page.locator("#overview-refresh").click()
    queue = page.locator("#chart-queue polyline")
    expect(queue).to_have_count(1, timeout=10_000)
    expect(queue).to_have_attribute("data-points", re.compile(r"^([3-9]|[1-9]\d+)$"))
    expect(page.locator("#chart-throughput polyline")).to_have_count(1)
    expect(page.locator("#chart-failures polyline")).to_have_count(1)
    # the top of the queue chart's scale is the deepest queue seen: 6 waiting tasks
    expect(page.locator("#chart-queue text").first).to_have_text("6")
    expect(page.locator("#charts-note")).to_contain_text("s of figures")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#view-overview").screenshot(path=str(ARTIFACTS / "ui-charts.png"))
    assert (ARTIFACTS / "ui-charts.png").stat().st_size > 1000
    tab.check_clean()
