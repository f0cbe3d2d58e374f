"""The web UI's federated panel in Chromium: rounds of a job as a table and a chart of
accuracy and loss per round, from ``GET /v1/tenants/{t}/federated/rounds``."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from playwright.sync_api import expect

from agentmesh.domain.federated_events import (
    FederatedModelCommittedEvent,
    FederatedRoundFailedEvent,
)
from agentmesh.federated.arrays import pack
from agentmesh.federated.history import append
from tests.e2e.ui.conftest import Plane
from tests.e2e.ui.test_ui_browser import OpenTab, browser, open_tab, plane, signed_in

pytestmark = pytest.mark.e2e
__all__ = ["browser", "open_tab", "plane"]  # fixtures shared with the main browser suite


def test_the_federated_panel_plots_accuracy_and_loss(plane: Plane, open_tab: OpenTab) -> None:
    tenant = "fl-" + uuid.uuid4().hex[:8]
    store = plane.ctx.persistence.store
    params = pack(np.zeros(650))
    accuracies = [0.1, 0.8, 0.9, 0.95]
    for n, acc in enumerate(accuracies):
        event = FederatedModelCommittedEvent(
            aggregate_id="digits", tenant_id=tenant, round=n, model_version=n, params=params,
            participants=("fl-p1", "fl-p2") if n else (), accuracy=acc, loss=2.3 / (n + 1),
        )  # fmt: skip
        plane.on_loop(append(store, event))
    failed = FederatedRoundFailedEvent(
        aggregate_id="digits", tenant_id=tenant, round=4, model_version=3, reason="too few"
    )
    plane.on_loop(append(store, failed))

    tab = signed_in(open_tab, plane, tenant, "observer", sub="fl-viewer")
    page = tab.page
    page.click('#nav a[data-view="federated"]')
    rows = page.locator("#federated-table tbody tr")
    expect(rows).to_have_count(5)
    expect(rows.nth(3)).to_contain_text("0.9500")
    expect(rows.nth(4).locator(".badge")).to_have_attribute("data-status", "failed")
    expect(page.locator("#federated-job")).to_have_value("digits")
    points = page.locator("#federated-chart polyline.acc").get_attribute("points") or ""
    assert len(points.split()) == len(accuracies)  # one point per committed round
    ys = [float(p.split(",")[1]) for p in points.split()]
    assert ys == sorted(ys, reverse=True)  # accuracy rises: the line goes up the chart
    assert (
        len((page.locator("#federated-chart polyline.loss").get_attribute("points") or "").split())
        == 4
    )
    tab.check_clean()
