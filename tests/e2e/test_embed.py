"""The embed snippet in use: the repository's pretend shop page (`ui/embed_example.html`),
served from another origin as a company's site would be, with its iframe pointed at the
running app; a customer chats inside it."""

from __future__ import annotations

import functools
import http.server
import threading
import time

from playwright.sync_api import expect

from tests.e2e.conftest import REPO

SNIPPET_SRC = 'src="http://127.0.0.1:7860/"'


def test_the_embed_example_page_chats_through_its_iframe(new_page, server, tmp_path, screenshots):
    page_html = (REPO / "ui" / "embed_example.html").read_text()
    assert SNIPPET_SRC in page_html  # the README's snippet, as pasted
    (tmp_path / "shop.html").write_text(page_html.replace(SNIPPET_SRC, f'src="{server.url}/"'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    shop = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=shop.serve_forever, daemon=True).start()
    try:
        page = new_page()
        page.goto(f"http://127.0.0.1:{shop.server_address[1]}/shop.html")
        expect(page.get_by_role("heading", name="Northwind Outfitters")).to_be_visible()
        widget = page.frame_locator("iframe[title='Customer support chat']")
        widget.locator("#message textarea").fill("How do I reset my password?")
        widget.locator("#send").click()
        expect(widget.locator("#chat [data-testid='user']").last).to_contain_text(
            "reset my password"
        )
        expect(widget.locator("#chat [data-testid='bot']").last).not_to_contain_text(
            "\u2026", timeout=60_000
        )
        reply = widget.locator("#chat [data-testid='bot']").last
        last, stable_since = None, time.monotonic()
        while time.monotonic() - stable_since < 1.5:  # the reply is complete once it stops changing
            text = reply.inner_text()
            if text != last:
                last, stable_since = text, time.monotonic()
            time.sleep(0.1)
        assert last.strip()
        page.screenshot(path=str(screenshots / "embedded.png"))
    finally:
        shop.shutdown()
