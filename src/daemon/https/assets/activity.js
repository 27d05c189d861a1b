// What happened and who may act: a dispatch's steps (shared with swarms.js), builds with their
// live compile log, the proc events feed, the audit log and users (admins).
import { api, el, follow, followLines, isAdmin, messageLine, table, time } from "./ui.js";

/// A dispatch's steps as they happen: each deployment log entry of `trace`; a build step's
/// compile output follows under it; a failure is marked. `done()` runs when it ends.
export function dispatchSteps(trace, done = () => {}) {
  const list = el("ol", { class: "steps", "aria-live": "polite" });
  const status = el("p", { class: "dispatch-status" }, "Running…");
  const section = el("section", { class: "dispatch", "data-trace": trace }, el("h3", {}, `Dispatch ${trace}`), status, list);
  const source = follow(`/api/v1/streams/deploys?trace=${encodeURIComponent(trace)}`, {
    deploy: (entry) => {
      const item = el("li", { class: entry.tags.join(" ") }, el("time", {}, time(entry.time)), " ", el("pre", { class: "message" }, entry.message));
      list.append(item);
      if (entry.build) item.append(buildLog(entry.build));
      if (entry.tags.includes("done") || entry.tags.includes("aborted")) {
        const failed = entry.tags.includes("aborted") || entry.tags.includes("failed");
        status.textContent = failed ? "Failed" : "Finished";
        status.className = `dispatch-status ${failed ? "failed" : "finished"}`;
        section.dataset.outcome = failed ? "failed" : "finished";
        source.close();
        done();
      }
    },
  });
  return section;
}

/// A build's compile output, live until the build ends.
function buildLog(id) {
  const pre = el("pre", { class: "log", tabindex: "0", "data-build": id });
  followLines(pre, `/api/v1/streams/builds/${id}`);
  return el("details", { open: true }, el("summary", {}, `Build ${id}: compile output`), pre);
}

export async function buildsPage(view, [id, trace]) {
  if (id === "trace" && trace) {
    view.append(el("p", {}, el("a", { href: "#/builds" }, "All builds")), dispatchSteps(trace));
    return;
  }
  if (id) {
    const b = await api("GET", `/api/v1/builds/${encodeURIComponent(id)}`);
    const fields = ["app_name", "version", "app_commit", "status", "step", "error", "artifact"];
    view.append(
      el("p", {}, el("a", { href: "#/builds" }, "All builds")),
      el("h2", {}, `Build ${b.id}`),
      el("dl", {}, fields.filter((k) => b[k]).flatMap((k) => [el("dt", {}, k), el("dd", {}, String(b[k]))]),
        el("dt", {}, "started"), el("dd", {}, time(b.started)), el("dt", {}, "ended"), el("dd", {}, time(b.ended))),
      buildLog(b.id),
    );
    return;
  }
  const page = await api("GET", "/api/v1/builds?limit=200");
  view.append(
    el("h2", {}, "Builds"),
    table(`${page.total} builds, newest first`, [
      ["Build", (b) => el("a", { href: `#/builds/${b.id}` }, String(b.id))],
      ["App", (b) => b.app_name],
      ["Version", (b) => b.version],
      ["Status", (b) => el("span", { class: `status ${b.status}` }, b.status)],
      ["Started", (b) => time(b.started)],
      ["Ended", (b) => time(b.ended)],
    ], page.items),
  );
}

export async function eventsPage(view) {
  const body = el("tbody");
  const row = (item) => {
    const e = item.event;
    return el("tr", {}, el("td", {}, new Date(e.time * 1000).toLocaleString()), el("td", {}, e.host), el("td", {}, e.name), el("td", {}, el("span", { class: `proc-state ${e.statename}` }, e.statename)));
  };
  view.append(
    el("h2", {}, "Events"),
    el("table", {}, el("caption", {}, "Proc state changes, newest first, live"),
      el("thead", {}, el("tr", {}, ["Time", "Host", "Proc", "State"].map((h) => el("th", { scope: "col" }, h)))), body),
  );
  // The newest 200, then live (the stream resumes after the last one shown).
  const latest = await api("GET", "/api/v1/events?last=200&limit=200");
  body.replaceChildren(...latest.slice().reverse().map(row));
  const after = latest.length ? latest[latest.length - 1].id : 0;
  follow(`/api/v1/streams/events?after=${after}`, { proc: (item) => body.prepend(row(item)) });
}

export async function auditPage(view) {
  const entries = await api("GET", "/api/v1/audit?limit=500");
  view.append(
    el("h2", {}, "Audit"),
    table("Every change, who made it and how it ended; newest first", [
      ["Time", (a) => time(a.time)],
      ["Who", (a) => a.user || `uid ${a.uid}`],
      ["Operation", (a) => a.method],
      ["Parameters", (a) => el("code", {}, a.params)],
      ["Outcome", (a) => a.outcome],
    ], entries),
  );
}

export async function usersPage(view) {
  if (!isAdmin()) {
    view.append(el("p", { role: "alert" }, "Only admins manage users."));
    return;
  }
  const message = messageLine();
  const list = el("div");
  const render = async () => {
    const users = await api("GET", "/api/v1/users");
    list.replaceChildren(
      table(`${users.length} users`, [
        ["Name", (u) => u.name],
        ["Role", (u) => roleSelect(u)],
        ["Made", (u) => time(u.created)],
        ["", (u) => el("button", { type: "button", class: "danger", onclick: () => remove(u.name) }, "Delete")],
      ], users),
    );
  };
  const roleSelect = (u) => {
    const s = el("select", { "aria-label": `Role of ${u.name}` }, ["viewer", "deployer", "admin"].map((r) => el("option", { selected: r === u.role }, r)));
    s.addEventListener("change", async () => {
      try {
        await api("PUT", `/api/v1/users/${encodeURIComponent(u.name)}`, { role: s.value });
        message.note(`${u.name} is now a ${s.value}`);
      } catch (e) {
        message.fail(e);
        await render();
      }
    });
    return s;
  };
  const remove = async (name) => {
    if (!confirm(`Delete user ${name} and its tokens?`)) return;
    try {
      await api("DELETE", `/api/v1/users/${encodeURIComponent(name)}`);
      await render();
    } catch (e) {
      message.fail(e);
    }
  };
  const form = el(
    "form",
    { class: "definition", "aria-label": "New user" },
    el("h3", {}, "New user"),
    el("div", { class: "field" }, el("label", { for: "u-name" }, "Name"), el("input", { id: "u-name", name: "name", required: true, autocomplete: "off" })),
    el("div", { class: "field" }, el("label", { for: "u-role" }, "Role"), el("select", { id: "u-role", name: "role" }, ["viewer", "deployer", "admin"].map((r) => el("option", {}, r)))),
    el("div", { class: "field" }, el("label", { for: "u-password" }, "Password"), el("input", { id: "u-password", name: "password", type: "password", autocomplete: "new-password", required: true })),
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Create")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = form.elements;
    try {
      await api("POST", "/api/v1/users", { name: f.name.value, role: f.role.value, password: f.password.value });
      message.note(`Created ${f.name.value}`);
      form.reset();
      await render();
    } catch (err) {
      message.fail(err);
    }
  });
  view.append(el("h2", {}, "Users"), message, list, form);
  await render();
}
