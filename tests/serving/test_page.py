"""The chat page at `/` in headless Chromium: it streams replies from the API, keeps the
conversation, drops the oldest turn when the context is full; a screenshot is kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chat.chat_run import greedy_reply

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.slow  # a browser start, like the Prefect UI test
@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
)
def test_chat_page_talks_to_the_model(server, chat_run, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("SMELT_ARTIFACT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    questions = [
        "What do glimmerbats eat?",
        "Who painted the Blue Lantern?",
        "How many moons does Tessaly have?",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(server.url + "/", timeout=60_000)
            page.locator("#mode", has_text="chat").wait_for(timeout=30_000)
            page.fill("#temperature", "0")

            def ask(question: str, n: int) -> str:
                page.fill("#input", question)
                page.press("#input", "Enter")
                done = page.locator('.assistant[data-done="true"]').nth(n)
                done.wait_for(timeout=60_000)
                return done.inner_text()

            first = ask(questions[0], 0)
            second = ask(questions[1], 1)
            page.fill("#max-tokens", "90")  # prompt + 90 no longer fits 128: turns are dropped
            third = ask(questions[2], 2)
            notes = page.locator(".note").all_inner_texts()
            header = page.inner_text("header")
            page.screenshot(path=str(shots / "chat-page.png"), full_page=True)
        finally:
            browser.close()
    one = [{"role": "user", "content": questions[0]}]
    assert first == greedy_reply(chat_run, one)[1] == "Glimmerbats eat copper moss."
    two = [*one, {"role": "assistant", "content": first}, {"role": "user", "content": questions[1]}]
    assert second == greedy_reply(chat_run, two)[1]
    assert third == greedy_reply(chat_run, [{"role": "user", "content": questions[2]}])[1]
    assert notes.count("(dropped the oldest turn to fit the context)") == 2
    assert "run" in header and "context 128 tokens" in header
    assert (shots / "chat-page.png").stat().st_size > 10_000
