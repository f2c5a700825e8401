"""The support desk as people use it: a customer and a human agent, in a real Chromium.

Debian's /usr/bin/chromium driven by Playwright's Python package (no browser
download; `scripts/system-deps.sh` installs chromium). The customer's message asks
for a human, the scripted agent escalates, a human agent signs in to the console,
claims the conversation and answers, and the customer's page shows the answer.
Screenshots go to the test's temporary directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from desk_site import CONSOLE_TOKEN, Site

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs the 'playwright' package (dev extra)"
)


def test_customer_escalates_and_a_human_answers(site: Site, browser: Any, tmp_path: Path) -> None:
    expect = sync_api.expect
    errors: list[str] = []
    shots = tmp_path / "screenshots"
    shots.mkdir()

    def watch(page: Any) -> Any:
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on(
            "console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None
        )
        page.set_default_timeout(15_000)
        return page

    # The customer writes; the agent hands the conversation to a human.
    customer = watch(browser.new_context().new_page())
    customer.goto(site.url + "/")
    customer.fill("#text", "My blender arrived broken, I want to talk to a human.")
    customer.click("#send")
    expect(customer.locator(".msg.author-customer")).to_contain_text("blender arrived broken")
    expect(customer.locator(".msg.author-agent")).to_contain_text("colleague")
    expect(customer.locator("#status")).to_contain_text("support team")
    customer.screenshot(path=str(shots / "1-customer-escalated.png"))

    # A human agent signs in (a wrong token first), sees it in the queue, claims, answers.
    console = watch(browser.new_context().new_page())
    console.goto(site.url + "/console")
    console.fill("#token", "not-the-token")
    console.fill("#human", "Alex")
    console.click("#login")
    expect(console.locator("#gate-error")).to_contain_text("Wrong console token")
    console.fill("#token", CONSOLE_TOKEN)
    console.click("#login")
    item = console.locator("#queue .queue-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("blender")
    item.click()
    expect(console.locator("#conv-status")).to_have_text("escalated")
    expect(console.locator("#steps")).to_contain_text("transfer_to_human")
    expect(console.locator("#steps .badge.allow").first).to_be_visible()
    console.screenshot(path=str(shots / "2-console-queue.png"), full_page=True)
    console.click("#claim")
    expect(console.locator("#conv-status")).to_have_text("claimed")
    expect(console.locator("#conv-claimed")).to_contain_text("Alex")
    console.fill("#reply-text", "Hi, this is Alex. A replacement blender ships today.")
    console.click("#reply-send")
    expect(console.locator("#messages .msg.author-human")).to_contain_text("replacement blender")
    console.screenshot(path=str(shots / "3-console-answered.png"), full_page=True)

    # The customer's open page shows the answer without a reload.
    expect(customer.locator(".msg.author-human")).to_contain_text("replacement blender ships")
    expect(customer.locator("#status")).to_contain_text("Alex")
    customer.screenshot(path=str(shots / "4-customer-answered.png"))

    # The customer writes back; the human sees it in the console.
    customer.fill("#text", "Thank you Alex!")
    customer.click("#send")
    expect(console.locator("#messages .msg.author-customer").last).to_contain_text("Thank you")

    # The dashboard shows the figures.
    dashboard = watch(browser.new_context().new_page())
    dashboard.goto(site.url + "/dashboard")
    dashboard.fill("#token", CONSOLE_TOKEN)
    dashboard.click("#gate button")
    expect(dashboard.locator("#fig-conversations .value")).to_have_text("1")
    expect(dashboard.locator("#fig-escalations .value")).to_have_text("1")
    expect(dashboard.locator("#charts svg").first).to_be_visible()
    dashboard.screenshot(path=str(shots / "5-dashboard.png"), full_page=True)

    assert sorted(p.name for p in shots.iterdir()) == [
        "1-customer-escalated.png",
        "2-console-queue.png",
        "3-console-answered.png",
        "4-customer-answered.png",
        "5-dashboard.png",
    ]
    # The wrong-token attempt is the only failed request a page saw.
    assert [e for e in errors if "403" not in e] == []


def test_a_human_approves_a_paused_refund_in_the_console(
    site: Site, browser: Any, tmp_path: Path
) -> None:
    expect = sync_api.expect
    order, email, zip_code, _ = site.big_order(250.0)
    customer = browser.new_context().new_page()
    customer.set_default_timeout(15_000)
    customer.goto(site.url + "/")
    customer.fill("#text", f"refund 250 for order {order}, I am {email} zip {zip_code}")
    customer.click("#send")
    expect(customer.locator("#status")).to_contain_text("waiting for approval")

    console = browser.new_context().new_page()
    console.set_default_timeout(15_000)
    console.goto(site.url + "/console")
    console.fill("#token", CONSOLE_TOKEN)
    console.fill("#human", "Sam")
    console.click("#login")
    pending = console.locator("#approvals .approval")
    expect(pending).to_have_count(1)
    expect(pending).to_contain_text("refund")
    expect(pending).to_contain_text(order)
    console.screenshot(path=str(tmp_path / "approval-pending.png"), full_page=True)
    pending.locator("button.approve").click()
    expect(pending).to_have_count(0)

    expect(customer.locator(".msg.author-agent")).to_contain_text("Your refund has been handled")
    expect(customer.locator(".msg.author-system").last).to_contain_text("Sam approved")
    customer.screenshot(path=str(tmp_path / "approval-customer.png"))
