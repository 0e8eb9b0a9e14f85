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


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
