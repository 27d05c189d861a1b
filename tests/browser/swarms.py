#!/usr/bin/python3
"""Drives a swarm from vr's dashboard in Debian's Chromium (WebDriver, selenium): open the swarm's
page and see its procs; press Swarm at a version whose uptest fails and read the failure's
output in the steps; swarm a good version and watch the build output, the steps and the boxes
change live (no reload); roll back from the releases; a YAML mistake in the swarm's form gets
vrd's message. Run by tests/it/dashboard.rs; on a failure it saves a screenshot.

Usage: swarms.py URL USER PASSWORD SWARM SCREENSHOT
"""
import os
import sys
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import chromium, log_in, report_failure

url, user, password, swarm, screenshot = sys.argv[1:6]
driver = chromium(900)
wait = WebDriverWait(driver, 120)


def boxes():
    """(name, classes) of the swarm page's proc boxes."""
    # Read in one go: the boxes are redrawn live, so handles to them go stale.
    return driver.execute_script(
        "return [...document.querySelectorAll('#swarm-procs .proc')].map(b => [b.dataset.name, b.className])")


def all_running(version):
    shown = boxes()
    return len(shown) == 2 and all(n.startswith(f"hello-{version}-") and "RUNNING" in c for n, c in shown)


def new_dispatch(old):
    """The dispatch shown in place of `old` (a list of at most one), once it has ended."""
    def ended(d):
        now = d.find_elements(By.CSS_SELECTOR, "#steps .dispatch")
        fresh = now and (not old or now[0] != old[0])
        return now[0] if fresh and now[0].get_attribute("data-outcome") else None
    return wait.until(ended)


def dispatch(version):
    """Swarms at `version`; returns the dispatch's section once it has ended."""
    field = driver.find_element(By.ID, "swarm-version")
    field.clear()
    field.send_keys(version)
    old = driver.find_elements(By.CSS_SELECTOR, "#steps .dispatch")
    driver.find_element(By.ID, "swarm-button").click()
    return new_dispatch(old)


step = "start"
try:
    step = "log in"
    log_in(driver, wait, url, user, password)

    step = "open the swarm from the swarms list"
    driver.find_element(By.CSS_SELECTOR, 'nav a[href="#/swarms"]').click()
    wait.until(lambda d: d.find_elements(By.LINK_TEXT, swarm))
    driver.find_element(By.LINK_TEXT, swarm).click()
    wait.until(lambda d: all_running("v1"))

    step = "swarm a version whose uptest fails and read why"
    ended = dispatch("v2")
    assert ended.get_attribute("data-outcome") == "failed", ended.text
    text = ended.text
    assert "02_broken failed" in text and "database unreachable" in text, text
    # VR keeps the new procs (unrouted) for a look; the old ones keep running and serving.
    old_ones = [n for n, c in boxes() if n.startswith("hello-v1-") and "RUNNING" in c]
    assert len(old_ones) == 2, f"the old procs keep running: {boxes()}"

    step = "swarm a good version and watch the boxes change live"
    started = time.time()
    ended = dispatch("v3")
    assert ended.get_attribute("data-outcome") == "finished", ended.text
    assert "Uptests passed" in ended.text, ended.text
    logs = ended.find_elements(By.CSS_SELECTOR, "pre[data-build]")
    assert logs and logs[0].get_attribute("textContent").strip(), "the build's compile output is shown"
    wait.until(lambda d: all_running("v3"))
    print(f"v3 swarmed and shown {time.time() - started:.1f} s after pressing Swarm")

    step = "roll back to release 1 from the releases"
    rows = driver.find_elements(By.CSS_SELECTOR, "#releases tbody tr")
    assert len(rows) >= 2, f"{len(rows)} releases shown"
    old = driver.find_elements(By.CSS_SELECTOR, "#steps .dispatch")
    # By script: the releases are redrawn when a dispatch ends, so a handle could go stale.
    driver.execute_script("[...document.querySelectorAll('#releases button')].find((b) => b.textContent === 'Roll back to 1').click()")
    driver.switch_to.alert.accept()
    ended = new_dispatch(old)
    assert ended.get_attribute("data-outcome") == "finished", ended.text
    wait.until(lambda d: all_running("v1"))

    step = "a YAML mistake in the form gets vrd's message"
    driver.find_element(By.CSS_SELECTOR, "details summary").click()
    config = driver.find_element(By.ID, "f-swarms-config")
    config.clear()
    config.send_keys("colour: [blue")
    driver.find_element(By.CSS_SELECTOR, "form.definition button[type=submit]").click()
    wait.until(lambda d: "config:" in d.find_element(By.CSS_SELECTOR, "form.definition .message").text)
    print("form said:", driver.find_element(By.CSS_SELECTOR, "form.definition .message").text)
    shots = os.environ.get("VR_SHOTS")
    if shots:
        # For a person's look at every page (not checked): VR_SHOTS=DIR.
        driver.save_screenshot(f"{shots}/swarm.png")
        for page in ["procs", "swarms", "apps", "apps/hello", "builds", "builds/1", "stacks", "hosts", "events"]:
            driver.get(f"{url}#/{page}")
            time.sleep(1.5)
            driver.save_screenshot(f"{shots}/{page.replace('/', '-')}.png")
    print("swarms: all passed")
except Exception as e:  # noqa: BLE001 - any failure is reported with the step and a screenshot
    report_failure(driver, "swarms", step, e, screenshot)
finally:
    driver.quit()
