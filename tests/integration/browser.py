"""Steps a data scientist takes in the browser, shared by the browser tests."""

from __future__ import annotations

import re
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def new_page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(30_000)
    return ctx.new_page()


def keycloak_login(page, username: str, password: str) -> None:
    """Fill Keycloak's own login form (the browser is already on it)."""
    page.wait_for_selector("#username")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#kc-login")


def login(page, hub, keycloak, username: str, password: str | None = None) -> None:
    page.goto(f"{hub.url}/hub/")
    page.wait_for_url(re.compile(rf"{re.escape(keycloak.browser_url)}/realms/{keycloak.realm}/.*"))
    keycloak_login(page, username, password or f"{username}-pw")
    page.wait_for_url(re.compile(rf"{re.escape(hub.url)}/(hub|user)/.*"))


def choose_and_start(page, hub, group: str, instance_type: str, image: str) -> None:
    """Fill the options form as a user does (group, then instance type, then image) and start."""
    page.goto(f"{hub.url}/hub/spawn")
    page.check(f"input[name=group][value={group}]")
    box = page.locator(f"[data-group={group}]")
    box.locator("select.primehub-instance-type").select_option(instance_type)
    box.locator("select.primehub-image").select_option(image)
    page.click("button:has-text('Start'), input[type=submit]")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
