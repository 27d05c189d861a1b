#!/usr/bin/python3
"""Drives vr's dashboard in Debian's Chromium through chromium-driver (WebDriver, selenium):
log in, see the procs, open one, read its live log, stop it and see its box turn STOPPED live,
start it again, filter, see which coordinator leads. Run by tests/it/dashboard.rs; on a failure it saves a screenshot.

Usage: dashboard.py URL USER PASSWORD PROC SCREENSHOT
"""
import sys
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import chromium, report_failure

url, user, password, proc, screenshot = sys.argv[1:6]
driver = chromium()
wait = WebDriverWait(driver, 20)


BOX = f'.proc[data-name="{proc}"]'


def box_state():
    # Read in one go: boxes are redrawn on every change, so a handle to one goes stale.
    return driver.execute_script("const b = document.querySelector(arguments[0]); return b ? b.className : ''", BOX)


step = "start"
try:
    step = "open the page"
    driver.get(url)
    wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
    step = "log in"
    driver.find_element(By.ID, "name").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    started = time.time()
    driver.find_element(By.CSS_SELECTOR, "#login button").click()
    wait.until(lambda d: "RUNNING" in box_state())
    assert not driver.find_element(By.ID, "login").is_displayed(), "the login form stays"
    print(f"procs shown {time.time() - started:.2f} s after logging in")
    step = "open the proc's panel and its live log"
    driver.execute_script("document.querySelector(arguments[0]).click()", BOX)
    wait.until(lambda d: "tick" in d.find_element(By.ID, "panel-log").text)
    step = "stop it and see the box change live"
    driver.find_element(By.CSS_SELECTOR, '[data-action="stop"]').click()
    clicked = time.time()
    wait.until(lambda d: "STOPPED" in box_state())
    print(f"box STOPPED {time.time() - clicked:.2f} s after the click")
    step = "start it again"
    driver.find_element(By.CSS_SELECTOR, '[data-action="start"]').click()
    wait.until(lambda d: "RUNNING" in box_state())
    step = "filter"
    driver.find_element(By.ID, "filter").send_keys("nothing-matches-this")
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".proc"))
    step = "see which coordinator leads on the hosts page"
    driver.get(url + "#/hosts")
    wait.until(lambda d: "leads; the model is in sqlite" in d.find_element(By.ID, "coordinators").text)
    print("dashboard: all passed")
except Exception as e:  # noqa: BLE001 - any failure is reported with the step and a screenshot
    report_failure(driver, "dashboard", step, e, screenshot)
finally:
    driver.quit()
