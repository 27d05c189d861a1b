// vr's dashboard: every host's procs grouped app -> swarm, coloured by state, kept live over the
// events stream; a proc's panel with its fields, its log (live) and its actions. Talks only to
// this vrd: /session, /login, /logout, /api/v1 (REST) and /api/v1/streams (server-sent events).
"use strict";
const $ = (id) => document.getElementById(id);
let csrf = null;
let procs = [];
let selected = null;
let logStream = null;
let events = null;
let refetch = null;

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (csrf && method !== "GET") headers["x-csrf-token"] = csrf;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

async function start() {
  try {
    const s = await api("GET", "/session");
    csrf = s.csrf;
    loggedIn(s);
  } catch (e) {
    $("login").hidden = false;
  }
}

function loggedIn(s) {
  $("login").hidden = true;
  $("procs").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${s.user} (${s.role})`;
  load();
  events = new EventSource("/api/v1/streams/events");
  events.addEventListener("proc", () => {
    clearTimeout(refetch);
    refetch = setTimeout(load, 150);
  });
}

async function load() {
  const page = await api("GET", "/api/v1/procs?limit=1000");
  procs = page.items;
  render();
  if (selected) showPanel(procs.find((p) => p.name === selected) || null);
}

function swarmOf(p) {
  return `${p.app_name}-${p.config_name}-${p.proc_name}`;
}

function render() {
  const filter = $("filter").value.trim();
  const root = $("procs");
  root.replaceChildren();
  const apps = new Map();
  for (const p of procs) {
    if (filter && !p.name.includes(filter)) continue;
    const swarms = apps.get(p.app_name) || new Map();
    const list = swarms.get(swarmOf(p)) || [];
    list.push(p);
    swarms.set(swarmOf(p), list);
    apps.set(p.app_name, swarms);
  }
  for (const [app, swarms] of [...apps].sort()) {
    const section = document.createElement("section");
    section.className = "app";
    section.innerHTML = "<h2></h2>";
    section.querySelector("h2").textContent = app;
    for (const [swarm, list] of [...swarms].sort()) {
      const div = document.createElement("div");
      div.className = "swarm";
      div.innerHTML = "<h3></h3><div class=boxes></div>";
      div.querySelector("h3").textContent = swarm;
      for (const p of list) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = `proc ${p.statename}`;
        b.dataset.name = p.name;
        b.textContent = `${p.host}:${p.port} ${p.statename}`;
        b.title = p.name;
        b.setAttribute("aria-label", `${p.name} on ${p.host}: ${p.statename}`);
        b.addEventListener("click", () => showPanel(p));
        div.querySelector(".boxes").append(b);
      }
      section.append(div);
    }
    root.append(section);
  }
}

function showPanel(p) {
  const panel = $("panel");
  if (!p) {
    panel.hidden = true;
    selected = null;
    if (logStream) logStream.close();
    return;
  }
  const changed = selected !== p.name;
  selected = p.name;
  panel.hidden = false;
  $("panel-name").textContent = p.name;
  $("panel-error").textContent = "";
  const dl = $("panel-fields");
  dl.replaceChildren();
  for (const k of ["host", "statename", "pid", "port", "version", "hash", "start_time", "exitstatus", "spawnerr"]) {
    if (p[k] === null || p[k] === undefined) continue;
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = k === "start_time" ? new Date(p[k] * 1000).toISOString() : String(p[k]);
    dl.append(dt, dd);
  }
  if (changed) followLog(p.name);
}

function followLog(name) {
  if (logStream) logStream.close();
  const pre = $("panel-log");
  pre.textContent = "";
  logStream = new EventSource(`/api/v1/streams/logs/${encodeURIComponent(name)}?tail=50`);
  logStream.addEventListener("line", (e) => {
    pre.textContent += JSON.parse(e.data).line + "\n";
    pre.scrollTop = pre.scrollHeight;
  });
}

async function act(action) {
  if (!selected) return;
  if (action === "destroy" && !confirm(`Destroy ${selected}? Its container and files go.`)) return;
  try {
    await api("POST", `/api/v1/procs/${encodeURIComponent(selected)}/${action}`);
    $("panel-error").textContent = "";
    if (action === "destroy") showPanel(null);
  } catch (e) {
    $("panel-error").textContent = e.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const s = await api("POST", "/login", { name: $("name").value, password: $("password").value });
      csrf = s.csrf;
      $("password").value = "";
      loggedIn(s);
    } catch (err) {
      $("login-error").textContent = err.message;
    }
  });
  $("logout").addEventListener("click", async () => {
    await api("POST", "/logout").catch(() => {});
    location.reload();
  });
  $("filter").addEventListener("input", render);
  $("panel-close").addEventListener("click", () => showPanel(null));
  for (const b of document.querySelectorAll("[data-action]")) {
    b.addEventListener("click", () => act(b.dataset.action));
  }
  start();
});
