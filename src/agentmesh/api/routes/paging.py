"""Paging of list routes: the ``limit`` / ``offset`` query parameters and the response's
``pagination`` / ``filters_applied`` fields."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from agentmesh.api.schemas import Pagination
from agentmesh.store.queries import Page

LimitQuery = Annotated[int, Query(ge=1, le=1000)]
OffsetQuery = Annotated[int, Query(ge=0, le=10000)]


def page_fields(page: Page, filters: dict[str, Any]) -> dict[str, Any]:
    """The ``pagination`` and ``filters_applied`` fields of a list response."""
    return {"pagination": Pagination(**page.pagination()), "filters_applied": filters or None}
