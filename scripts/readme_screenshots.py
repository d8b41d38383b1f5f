"""Take the README's screenshots of the three views from a running `chatbot serve`.

    .venv/bin/python scripts/readme_screenshots.py --url http://127.0.0.1:7860 \
        --agent alice:PASSWORD --admin root:PASSWORD

Drives Debian's Chromium with Playwright: a customer asks a question and reads the
sources, another asks for a person, the agent opens that conversation and takes it,
the admin opens the analytics. Writes docs/screenshots/{widget,agent,admin}.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--agent", required=True, help="USER:PASSWORD of an agent")
    parser.add_argument("--admin", required=True, help="USER:PASSWORD of an admin")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=120_000)  # replies from the real models take seconds on a CPU
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=FLAGS)

        def page(width=1100, height=760):
            context = browser.new_context(
                viewport={"width": width, "height": height}, base_url=args.url
            )
            context.set_default_timeout(120_000)
            return context.new_page()

        customer = page(900, 700)
        customer.goto("/")
        customer.wait_for_selector("#message textarea")
        customer.fill("#message textarea", "my bank shows 2 payments for one order")
        customer.click("#send")
        expect(customer.locator("#chat details").last).to_be_visible()
        customer.locator("#chat details summary").last.click()
        time.sleep(0.5)
        customer.screenshot(path=str(OUT / "widget.png"))

        other = page(900, 700)
        other.goto("/")
        other.wait_for_selector("#message textarea")
        other.fill(
            "#message textarea", "My parcel arrived damaged, the box was crushed. What can I do?"
        )
        other.click("#send")
        expect(other.locator("#chat [data-testid='bot']").last).not_to_contain_text("\u2026")
        time.sleep(3)
        other.click("#talk-to-human")
        expect(other.locator("#status-banner")).to_be_visible()

        for role, credentials, console in (
            ("agent", args.agent, "/agent"),
            ("admin", args.admin, "/admin"),
        ):
            user, password = credentials.split(":", 1)
            view = page(1400, 1000)
            view.goto(f"/login?next={console}")
            view.fill("#username", user)
            view.fill("#password", password)
            view.click("#login")
            view.wait_for_url(f"**{console}/")
            if role == "agent":
                view.locator("#queue [role=gridcell]", has_text="box was crushed").first.click()
                expect(view.locator("#conversation-view")).to_contain_text("box was crushed")
                view.click("#take-over")
                expect(view.locator("#owner-note")).to_contain_text("You are handling")
                view.fill(
                    "#free-reply textarea",
                    "So sorry! I've e-mailed you a free return label; the replacement ships today.",
                )
                view.click("#send-reply")
                time.sleep(2)
            else:
                view.get_by_role("tab", name="Analytics").click()
                time.sleep(4)
            view.evaluate("window.scrollTo(0, 0)")
            time.sleep(0.5)
            view.screenshot(path=str(OUT / f"{role}.png"), full_page=role == "admin")
        browser.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
