import pytest

from common import events


@pytest.fixture
def published(monkeypatch):
    """Every event published during the test, as (type, data)."""
    seen: list[tuple[str, dict]] = []
    monkeypatch.setattr(events, "_sinks", [*events._sinks, lambda tenant, kind, data: seen.append((kind, data))])
    return seen
