"""What the browser tests share: Debian's Chromium through chromium-driver, headless, trusting
vrd's own certificate; a failure's report with its step, a screenshot and the console."""
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


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
