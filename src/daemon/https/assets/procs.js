// The dashboard's first page: every host (with its state: an unreachable one says so) and every
// proc, grouped app -> swarm, coloured by state and kept live over the events stream (a change
// is applied to its box at once; the list is re-read shortly after, for procs that came or
// went). A proc's panel has its fields, its live log and Start / Stop / Restart / Destroy.
import { api, canDeploy, el, follow, followLines, messageLine, onLeave, time } from "./ui.js";

const FIELDS = ["host", "statename", "pid", "port", "version", "hash", "start_time", "exitstatus", "spawnerr"];

/// Proc boxes grouped app -> swarm, as the procs page and a swarm's page show them.
export function procBoxes(procs, onPick) {
  const apps = new Map();
  for (const p of procs) {
    const swarm = `${p.app_name}-${p.config_name}-${p.proc_name}`;
    const swarms = apps.get(p.app_name) || new Map();
    swarms.set(swarm, [...(swarms.get(swarm) || []), p]);
    apps.set(p.app_name, swarms);
  }
  return [...apps].sort().map(([app, swarms]) =>
    el(
      "section",
      { class: "app" },
      el("h2", {}, app),
      [...swarms].sort().map(([swarm, list]) =>
        el(
          "div",
          { class: "swarm" },
          el("h3", {}, swarm),
          el(
            "div",
            { class: "boxes" },
            list.map((p) => box(p, onPick)),
          ),
        ),
      ),
    ),
  );
}

function box(p, onPick) {
  return el(
    "button",
    {
      type: "button",
      class: `proc ${p.statename}`,
      "data-name": p.name,
      title: p.spawnerr ? `${p.name}: ${p.spawnerr}` : p.name,
      "aria-label": `${p.name} on ${p.host}: ${p.statename}`,
      onclick: () => onPick(p),
    },
    `${p.host}:${p.port} ${p.statename}`,
  );
}

/// Keeps `procs` live: each proc event is applied to its entry at once (`changed(name)`), and
/// the whole list is re-read soon after (`reread()`) for procs that came or went.
export function liveProcs(state, changed, reread) {
  let timer = null;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(reread, 400);
  };
  const events = follow("/api/v1/streams/events?after=now", {
    proc: ({ event: e }) => {
      const p = state.procs.find((x) => x.name === e.name);
      if (p) {
        Object.assign(p, {
          statename: e.statename,
          pid: e.pid,
          exitstatus: e.exitstatus,
          start_time: e.start_time,
        });
        changed(p);
      }
      soon();
    },
  });
  // Marks for the dashboard benchmark (benches/fleet.sh): when changes start arriving.
  events.addEventListener("open", () => performance.mark("vr-live"), { once: true });
  // A safety net for what no event tells (a host that comes back): re-read every 10 s too.
  const every = setInterval(reread, 10000);
  onLeave(() => {
    clearTimeout(timer);
    clearInterval(every);
  });
}

export async function procsPage(view) {
  const state = { procs: [], selected: null };
  const filter = el("input", { id: "filter", type: "search", placeholder: "app, swarm, proc or host", autocomplete: "off" });
  const hosts = el("ul", { id: "hosts", class: "hosts", "aria-label": "Hosts" });
  const list = el("section", { id: "procs", "aria-label": "Procs by app and swarm" });
  const panel = procPanel(state);
  view.append(
    el("div", { class: "toolbar" }, el("label", { for: "filter" }, "Filter"), filter, hosts),
    el("div", { class: "split" }, list, panel.node),
  );
  const render = () => {
    const f = filter.value.trim();
    const shown = state.procs.filter((p) => !f || p.name.includes(f) || p.host.includes(f));
    list.replaceChildren(...procBoxes(shown, (p) => panel.show(p)));
    if (!shown.length) list.append(el("p", { class: "empty" }, state.procs.length ? "No proc matches the filter." : "No procs yet."));
  };
  const reread = async () => {
    const page = await api("GET", "/api/v1/procs?limit=1000");
    state.procs = page.items;
    render();
    if (state.selected) panel.show(state.procs.find((p) => p.name === state.selected) || null);
  };
  const rehost = async () => {
    const rows = await api("GET", "/api/v1/fleet").catch(() => []);
    hosts.replaceChildren(
      ...rows.map((h) =>
        el(
          "li",
          { class: `host ${h.state}`, title: h.last_heartbeat ? `last heartbeat ${time(h.last_heartbeat)}` : "" },
          `${h.host}: ${h.state === "down" || h.state === "suspect" ? `${h.state} (unreachable)` : h.state}`,
          h.procs === null ? "" : `, ${h.procs} procs`,
        ),
      ),
    );
  };
  filter.addEventListener("input", render);
  liveProcs(
    state,
    (p) => {
      const b = list.querySelector(`.proc[data-name="${CSS.escape(p.name)}"]`);
      if (b) b.replaceWith(box(p, (x) => panel.show(x)));
      if (state.selected === p.name) panel.show(p);
    },
    reread,
  );
  const hostTimer = setInterval(rehost, 5000);
  onLeave(() => clearInterval(hostTimer));
  // The hosts and the procs load side by side: a slow host never holds up the other.
  rehost();
  await reread();
  performance.mark("vr-procs-shown");
}

/// A proc's panel: its fields, its live log and its actions.
function procPanel(state) {
  const name = el("h2", { id: "panel-name" });
  const fields = el("dl", { id: "panel-fields" });
  const message = messageLine();
  message.id = "panel-error";
  const log = el("pre", { id: "panel-log", "aria-live": "off", tabindex: "0" });
  let logStream = null;
  const act = async (action) => {
    if (action === "destroy" && !confirm(`Destroy ${state.selected}? Its container and files go.`)) return;
    try {
      await api("POST", `/api/v1/procs/${encodeURIComponent(state.selected)}/${action}`);
      message.note(`${action}: done`);
      if (action === "destroy") show(null);
    } catch (e) {
      message.fail(e);
    }
  };
  const button = (action, label, cls) =>
    el("button", { type: "button", "data-action": action, class: cls, disabled: !canDeploy(), onclick: () => act(action) }, label);
  const node = el(
    "aside",
    { id: "panel", "aria-label": "The selected proc", hidden: true },
    name,
    fields,
    el(
      "div",
      { class: "actions" },
      button("start", "Start"),
      button("stop", "Stop"),
      button("restart", "Restart"),
      button("destroy", "Destroy", "danger"),
      el("button", { type: "button", id: "panel-close", onclick: () => show(null) }, "Close"),
    ),
    message,
    el("h3", {}, "Log"),
    log,
  );
  function show(p) {
    if (!p) {
      node.hidden = true;
      state.selected = null;
      if (logStream) logStream.close();
      return;
    }
    const changed = state.selected !== p.name;
    state.selected = p.name;
    node.hidden = false;
    name.textContent = p.name;
    fields.replaceChildren(
      ...FIELDS.filter((k) => p[k] !== null && p[k] !== undefined).flatMap((k) => [
        el("dt", {}, k),
        el("dd", {}, k === "start_time" ? time(p[k]) : String(p[k])),
      ]),
    );
    if (changed) {
      message.textContent = "";
      if (logStream) logStream.close();
      log.textContent = "";
      logStream = followLines(log, `/api/v1/streams/logs/${encodeURIComponent(p.name)}?tail=50`);
    }
  }
  return { node, show };
}
