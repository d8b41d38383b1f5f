"""Logging out, as a real Chromium does it, on both consoles: the console's own "Log
out" button posts in the same tab (no new tab, no console left open behind it), lands
on the login page, and the session is over at once (the console's API refuses the same
browser); Back then shows the login page, never the console (console pages are
`Cache-Control: no-store`). Screenshots: `logout-<console>-before.png` (the console
with its button) and `logout-<console>-back.png` (what Back shows)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ADMIN, AGENT, login

CONSOLES = [
    pytest.param(AGENT, "/agent", "#queue", id="agent"),
    pytest.param(ADMIN, "/admin", "#import", id="admin"),
]


@pytest.mark.parametrize(("account", "console", "landmark"), CONSOLES)
def test_log_out_in_the_same_tab_and_back_shows_the_login(
    new_page, screenshots, account, console, landmark
):
    page = new_page()
    login(page, *account, console)
    expect(page.locator(landmark)).to_be_visible()
    button = page.locator("#logout")
    expect(button).to_be_visible()
    page.screenshot(path=str(screenshots / f"logout-{console.strip('/')}-before.png"))
    assert page.request.get(f"{console}/config").status == 200

    button.click()
    expect(page).to_have_url(re.compile(r"/login$"))
    assert len(page.context.pages) == 1  # the same tab: nothing opened, nothing left open
    assert page.request.get(f"{console}/config").status == 401

    page.go_back()
    expect(page).to_have_url(re.compile(r"/login\?next=" + re.escape(console) + "$"))
    expect(page.locator("#username")).to_be_visible()
    expect(page.locator(landmark)).to_have_count(0)
    page.screenshot(path=str(screenshots / f"logout-{console.strip('/')}-back.png"))
