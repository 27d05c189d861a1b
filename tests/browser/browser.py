"""What the browser tests share: Debian's Chromium through chromium-driver, headless, trusting
vrd's own certificate; a failure's report with its step, a screenshot and the console."""
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def chromium(height=800):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--ignore-certificate-errors", f"--window-size=1200,{height}"]:
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def report_failure(driver, name, step, error, screenshot):
    driver.save_screenshot(screenshot)
    print(f"{name}: failed to {step}: {error!r}; screenshot: {screenshot}", file=sys.stderr)
    for entry in driver.get_log("browser"):
        print("console:", entry["message"], file=sys.stderr)
    sys.exit(1)


def log_in(driver, wait, url, user, password):
    """Opens the dashboard and logs in through its form; returns once the pages' links show."""
    driver.get(url)
    wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
    driver.find_element(By.ID, "name").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()
    wait.until(lambda d: d.find_element(By.ID, "nav").is_displayed())
