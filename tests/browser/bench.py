#!/usr/bin/python3
"""The dashboard benchmark's browser half (benches/fleet.sh, part "dashboard"): in Debian's
Chromium, log in, then load the procs page afresh and time it to its first useful paint (every
proc's box drawn) and to live (the events stream open); then stop and start procs through the
API, in turn on each host, and time each change from vrd's event (its `time`) to the box that
shows it. Prints one JSON object.

Usage: bench.py URL USER PASSWORD PROCS CHANGES SCREENSHOT
(PROCS: how many boxes to wait for; CHANGES: how many stop/start pairs.)
"""
import json
import sys

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import chromium, log_in, report_failure

url, user, password, procs, changes, screenshot = sys.argv[1:7]
procs, changes = int(procs), int(changes)
driver = chromium()
wait = WebDriverWait(driver, 120)

# In the page: every box change with the time it was seen, and every event with vrd's time.
WATCH = """
window.seen = []; window.sent = {};
new MutationObserver((records) => {
  const now = Date.now();
  for (const r of records) for (const n of r.addedNodes)
    if (n.classList && n.classList.contains("proc")) window.seen.push([n.dataset.name, n.className, now]);
}).observe(document.getElementById("procs"), { childList: true, subtree: true });
const es = new EventSource("/api/v1/streams/events?after=now");
es.onopen = () => { window.watching = true; };
es.addEventListener("proc", (e) => { const p = JSON.parse(e.data).event; window.sent[p.name + " " + p.statename] = p.time * 1000; });
"""

# Acts on a proc through the API as the page would (its CSRF token).
ACT = """
const [name, action, done] = arguments;
fetch("/session").then((r) => r.json()).then((s) =>
  fetch(`/api/v1/procs/${encodeURIComponent(name)}/${action}`, { method: "POST", headers: { "x-csrf-token": s.csrf } }))
  .then((r) => done(r.status), (e) => done(String(e)));
"""

step = "start"
try:
    step = "log in"
    log_in(driver, wait, url, user, password)

    step = "load the procs page afresh"
    loads = []
    for _ in range(5):
        driver.get("about:blank")
        driver.get(url)
        wait.until(lambda d: d.execute_script("return performance.getEntriesByName('vr-procs-shown').length && performance.getEntriesByName('vr-live').length"))
        boxes = driver.execute_script("return document.querySelectorAll('.proc').length")
        assert boxes >= procs, f"{boxes} boxes, not {procs}"
        loads.append(driver.execute_script("""
          const at = (n) => performance.getEntriesByName(n)[0].startTime;
          return [at('vr-procs-shown'), at('vr-live')];"""))

    step = "time changes from vrd's event to the box"
    driver.execute_script(WATCH)
    # Its stream starts at the newest event when it connects: nothing may happen before.
    wait.until(lambda d: d.execute_script("return window.watching === true"))
    names = driver.execute_script("return [...document.querySelectorAll('.proc')].map((b) => [b.dataset.name, b.textContent.split(':')[0]])")
    by_host = {}
    for name, host in names:
        by_host.setdefault(host, []).append(name)
    hosts = sorted(by_host)
    latencies = {h: [] for h in hosts}
    for i in range(changes):
        host = hosts[i % len(hosts)]
        name = by_host[host][i // len(hosts) % len(by_host[host])]
        for action, state in [("stop", "STOPPED"), ("start", "RUNNING")]:
            key = f"{name} {state}"
            driver.execute_script("window.seen = []; delete window.sent[arguments[0]];", key)
            status = driver.execute_async_script(ACT, name, action)
            assert status == 200, f"{action} {name}: {status}"
            wait.until(lambda d: d.execute_script(
                "const [n, s, k] = arguments; return k in window.sent && window.seen.some((x) => x[0] === n && x[1].includes(s));",
                name, state, key))
            seen_at, sent_at = driver.execute_script(
                "const [n, s, k] = arguments; const x = window.seen.find((x) => x[0] === n && x[1].includes(s));"
                "return [x[2], window.sent[k]];", name, state, key)
            latencies[host].append(seen_at - sent_at)
    print(json.dumps({"loads": loads, "latencies": latencies}))
except Exception as e:  # noqa: BLE001 - any failure is reported with the step and a screenshot
    print("seen, sent:", driver.execute_script("return [window.seen, window.sent]"), file=sys.stderr)
    report_failure(driver, "bench", step, e, screenshot)
finally:
    driver.quit()
