"""The public calculator in a real browser, by keyboard only: with htmx (the figures swap in, the address
becomes the result's link, the focus moves to the figures) and without JavaScript (a plain GET form)."""

import pytest

from tests.e2e.conftest import shot
from tests.rewards.test_calculator import calculator_url, shop  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _fill_by_keyboard(page) -> None:
    page.focus("#id_orders_per_month")
    page.keyboard.press("Control+A")
    page.keyboard.type("4")
    page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("25.50")
    page.keyboard.press("Tab")
    page.keyboard.type("1")
    page.keyboard.press("Enter")


@pytest.mark.parametrize("javascript", [True, False])
def test_a_visitor_works_out_a_year_by_keyboard(browser, live_server, shop, javascript):  # noqa: F811
    page = browser.new_context(java_script_enabled=javascript).new_page()
    page.goto(live_server.url + calculator_url(shop))
    _fill_by_keyboard(page)
    page.wait_for_selector("[data-testid=points-total]")
    assert int(page.inner_text("[data-testid=points-total]")) > 0
    assert page.locator("table tbody tr").count() == 12
    assert "orders_per_month=4" in page.url and "activity-review=1" in page.url  # a link to this result
    if javascript:
        assert page.evaluate("document.activeElement.id") == "results-title"
    shot(page, f"calculator-{'htmx' if javascript else 'no-js'}")
