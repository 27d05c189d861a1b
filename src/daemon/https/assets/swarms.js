// Swarms: the list, and a swarm's page: its procs (live), "Swarm" at a version (or keeping its
// own) with the dispatch's steps as they happen (build output, deploy n/N, uptests with each
// failure's output, routing, cleanup), its releases with rollback, and its definition's form.
import { api, canDeploy, el, messageLine, onLeave, table, time } from "./ui.js";
import { definitionForm, deleteButton } from "./objects.js";
import { liveProcs, procBoxes } from "./procs.js";
import { dispatchSteps } from "./activity.js";

export async function swarmsPage(view, [name]) {
  if (name === "new") {
    const saved = (d) => (location.hash = `#/swarms/${encodeURIComponent(d.name)}`);
    view.append(el("h2", {}, "New swarm"), definitionForm("swarms", null, saved));
    return;
  }
  if (name) return swarmPage(view, name);
  const page = await api("GET", "/api/v1/swarms?limit=1000");
  view.append(
    el("h2", {}, "Swarms"),
    canDeploy() ? el("p", {}, el("a", { href: "#/swarms/new", class: "button" }, "New swarm")) : "",
    table(`${page.total} swarms`, [
      ["Swarm", (s) => el("a", { href: `#/swarms/${encodeURIComponent(s.name)}` }, s.name)],
      ["App", (s) => s.app],
      ["Version", (s) => s.version],
      ["Config", (s) => s.config_name],
      ["Proc", (s) => s.proc_name],
      ["Squad", (s) => s.squad],
      ["Size", (s) => s.size],
      ["Routing", (s) => (s.pool ? `${s.pool}@${s.balancer || "builtin"}` : "-")],
    ], page.items),
  );
}

async function swarmPage(view, name) {
  const swarm = await api("GET", `/api/v1/swarms/${encodeURIComponent(name)}`);
  const path = `/api/v1/swarms/${encodeURIComponent(name)}`;
  const boxes = el("section", { id: "swarm-procs", "aria-label": "This swarm's procs" });
  const steps = el("section", { id: "steps", "aria-label": "The dispatch's steps" });
  const releases = el("section", { id: "releases", "aria-label": "Releases" });
  view.append(
    el("p", {}, el("a", { href: "#/swarms" }, "All swarms")),
    el("h2", {}, `Swarm ${name}`),
    boxes,
    swarmForm(path, swarm, steps, () => showReleases()),
    steps,
    releases,
    el("details", {}, el("summary", {}, "Definition"), definitionForm("swarms", swarm, () => {}), deleteButton("swarms", name, () => (location.hash = "#/swarms"))),
  );

  // The procs it owns: those of its app, config and proc name.
  const mine = (p) => p.app_name === swarm.app && p.config_name === swarm.config_name && p.proc_name === swarm.proc_name;
  const state = { procs: [] };
  const render = () => {
    boxes.replaceChildren(el("h3", {}, "Procs"), ...procBoxes(state.procs, (p) => (location.hash = `#/procs`)));
    if (!state.procs.length) boxes.append(el("p", { class: "empty" }, "No procs: press Swarm."));
  };
  const reread = async () => {
    const page = await api("GET", `/api/v1/procs?limit=1000`);
    state.procs = page.items.filter(mine);
    render();
  };
  liveProcs(state, render, reread);

  async function showReleases() {
    const list = await api("GET", `${path}/releases`);
    const message = messageLine();
    const rollback = async (number) => {
      if (!confirm(`Roll ${name} back to release ${number}?`)) return;
      try {
        const started = await api("POST", `${path}/rollback`, { number });
        steps.replaceChildren(dispatchSteps(started.trace, showReleases));
      } catch (e) {
        message.fail(e);
      }
    };
    releases.replaceChildren(
      el("h3", {}, "Releases"),
      message,
      table(`${list.length} releases, newest last`, [
        ["Number", (r) => r.number],
        ["Hash", (r) => r.release.hash],
        ["Version", (r) => (r.release.spec && r.release.spec.version) || "-"],
        ["Build", (r) => el("a", { href: `#/builds/${r.release.build}` }, `build ${r.release.build}`)],
        ["First used", (r) => time(r.created)],
        ["", (r) => el("button", { type: "button", disabled: !canDeploy(), onclick: () => rollback(r.number) }, `Roll back to ${r.number}`)],
      ], list),
    );
  }
  await Promise.all([reread(), showReleases()]);
}

/// "Swarm" with a version (empty: keep the swarm's), then its steps, live.
function swarmForm(path, swarm, steps, done) {
  const message = messageLine();
  const version = el("input", { id: "swarm-version", placeholder: `keep (${swarm.version})`, autocomplete: "off" });
  const form = el(
    "form",
    { class: "inline", id: "swarm-form", "aria-label": "Swarm" },
    el("label", { for: "swarm-version" }, "Version"),
    version,
    el("button", { type: "submit", id: "swarm-button", disabled: !canDeploy() }, "Swarm"),
    message,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const v = version.value.trim();
      const started = await api("POST", `${path}/swarm`, v ? { version: v } : {});
      message.note("");
      steps.replaceChildren(...started.map((d) => dispatchSteps(d.trace, done)));
    } catch (err) {
      message.fail(err);
    }
  });
  return form;
}
