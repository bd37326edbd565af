"""A real headless Chromium (Debian's chromium + chromium-driver, installed by
scripts/browser.sh) driven by Selenium. The driver path is given explicitly, so Selenium's
driver manager never runs (nothing is downloaded)."""
from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager

CHROMIUM = os.environ.get("RLPAD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RLPAD_CHROMEDRIVER", "/usr/bin/chromedriver")
# the machine's network is closed: no background connections, no first-run or sync calls
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


def missing() -> str | None:
    for p in (CHROMIUM, CHROMEDRIVER):
        if not os.access(p, os.X_OK):
            return f"{p} is missing: run `bash scripts/browser.sh` (Debian's chromium and chromium-driver)"
    return None


@contextmanager
def chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    problem = missing()
    if problem:
        raise RuntimeError(problem)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory(prefix="rlpad-chrome-") as profile:
        for f in (*FLAGS, f"--user-data-dir={profile}"):
            opts.add_argument(f)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
        try:
            yield driver
        finally:
            driver.quit()


def wait_for(driver, css: str, timeout: float = 30.0, text: str | None = None):
    """The first element matching `css` (containing `text`, if given) once it is there."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        els = driver.find_elements(By.CSS_SELECTOR, css)
        els = [e for e in els if text is None or text in e.text]
        if els:
            return els[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {css!r}{f' with {text!r}' if text else ''} within "
                                 f"{timeout} s; page text: {driver.find_element(By.TAG_NAME, 'body').text[:1500]}")
        time.sleep(0.1)


def text(driver, css: str, timeout: float = 30.0, contains: str | None = None) -> str:
    """The text of the first element matching `css` once there (a Dash page may redraw an
    element while it is read: a stale one is looked up again)."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            return wait_for(driver, css, max(deadline - time.monotonic(), 0.1), contains).text
        except StaleElementReferenceException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
