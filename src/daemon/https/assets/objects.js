// Definitions (apps, buildpacks, stacks, squads, hosts, ingredients; swarms.js adds its own
// page): a list, and a form with every field of the kind. Mappings and lists are written as YAML
// and read by vrd exactly as the CLI reads them (POST /api/v1/yaml), so a mistake gets the same
// message; the definition itself is checked by vrd as `vr KIND create` is. A stack's page also
// builds, follows and activates its images; a host's shows its state.
import { api, canDeploy, el, followLines, isAdmin, messageLine, table, time } from "./ui.js";

// [field, type, label, help]; types: text, opt (text, left out when empty), number, bool,
// map (YAML key: value lines), list (YAML list), words (comma-separated), or a list of choices.
export const FIELDS = {
  apps: [
    ["name", "text", "Name", "no dashes"],
    ["repo_url", "text", "Repository", "a URL or an absolute path vrd can read"],
    ["repo_type", ["git", "hg"], "Repository type"],
    ["buildpack", "opt", "Buildpack", "always build with this one; empty: detect"],
    ["stack", "text", "Stack"],
    ["build_env", "map", "Build environment", "NAME: value lines, given to buildpacks"],
  ],
  buildpacks: [
    ["name", "text", "Name"],
    ["repo_url", "text", "Repository", "#rev pins a revision"],
    ["repo_type", ["git", "hg"], "Repository type"],
    ["desc", "opt", "Description"],
    ["order", "number", "Detect order", "lower first"],
  ],
  stacks: [
    ["name", "text", "Name"],
    ["desc", "opt", "Description"],
    ["base_image_url", "text", "Base image", "a tarball: a path, file:// or http(s)://"],
    ["base_image_name", "opt", "Base image name"],
    ["base_image_md5", "opt", "Base image md5"],
    ["provisioning_script", "opt", "Provisioning script", "a path on vrd's host or a URL"],
    ["env", "map", "Script environment"],
  ],
  squads: [
    ["name", "text", "Name"],
    ["desc", "opt", "Description"],
  ],
  hosts: [
    ["name", "text", "Name"],
    ["squad", "opt", "Squad"],
    ["active", "bool", "Active", "new procs may be placed on it"],
    ["address", "opt", "Address", "where balancers reach its procs"],
    ["draining", "bool", "Draining"],
  ],
  ingredients: [
    ["name", "text", "Name"],
    ["config", "map", "Config", "merged into settings.yaml"],
    ["env", "map", "Environment"],
  ],
  swarms: [
    ["name", "opt", "Name", "empty: APP-CONFIG-PROC"],
    ["app", "text", "App"],
    ["version", "text", "Version", "a tag, branch or revision"],
    ["proc_name", "text", "Proc", "the Procfile entry"],
    ["config_name", "text", "Config name"],
    ["squad", "text", "Squad"],
    ["size", "number", "Size"],
    ["pool", "opt", "Pool", "empty: not routed"],
    ["balancer", "opt", "Balancer", "empty: the builtin router"],
    ["ingredients", "words", "Ingredients", "comma-separated, merged in order"],
    ["config", "map", "Config", "settings.yaml entries"],
    ["env", "map", "Environment"],
    ["volumes", "list", "Volumes", "- [host_path, container_path] or - [host, container, ro]"],
    ["run_as", "text", "Run as"],
    ["mem_limit", "opt", "Memory limit", "e.g. 256M"],
    ["memsw_limit", "opt", "Memory + swap limit"],
    ["network", ["host", "private"], "Network"],
    ["seccomp", ["default", "unconfined"], "Seccomp", "unconfined: admins only"],
  ],
};

const DEFAULTS = {
  apps: { repo_type: "git" },
  buildpacks: { repo_type: "git", order: 0 },
  hosts: { active: true },
  swarms: { proc_name: "web", config_name: "prod", squad: "default", size: 1, run_as: "nobody", network: "host", seccomp: "default" },
};

const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/// A mapping or list as YAML lines (each value in JSON, which YAML reads as it is).
function toYaml(value) {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.map((v) => `- ${JSON.stringify(v)}`).join("\n");
  return Object.entries(value)
    .map(([k, v]) => `${KEY.test(k) ? k : JSON.stringify(k)}: ${JSON.stringify(v)}`)
    .join("\n");
}

function input(kind, [field, type, label, help], value) {
  const id = `f-${kind}-${field}`;
  let control;
  if (Array.isArray(type)) {
    control = el("select", { id, name: field }, type.map((c) => el("option", { value: c, selected: c === value }, c)));
  } else if (type === "bool") {
    control = el("input", { id, name: field, type: "checkbox", checked: Boolean(value) });
  } else if (type === "map" || type === "list") {
    control = el("textarea", { id, name: field, rows: 4, spellcheck: "false" });
    control.value = toYaml(value);
  } else {
    control = el("input", { id, name: field, type: type === "number" ? "number" : "text" });
    control.value = value === undefined || value === null ? "" : type === "words" ? value.join(", ") : String(value);
  }
  const hint = help ? el("small", { id: `${id}-help` }, help) : null;
  if (hint) control.setAttribute("aria-describedby", hint.id);
  return el("div", { class: `field ${type}` }, el("label", { for: id }, label), control, hint);
}

/// Reads the form back into a definition; YAML fields are read by vrd. Throws "FIELD: why".
async function read(kind, form) {
  const def = {};
  for (const [field, type] of FIELDS[kind]) {
    const c = form.elements[field];
    if (type === "bool") def[field] = c.checked;
    else if (type === "number") {
      if (c.value.trim() !== "") def[field] = Number(c.value);
    } else if (type === "words") {
      const words = c.value.split(",").map((w) => w.trim()).filter(Boolean);
      if (words.length) def[field] = words;
    } else if (type === "map" || type === "list") {
      if (!c.value.trim()) continue;
      try {
        const { value } = await api("POST", "/api/v1/yaml", { text: c.value, mapping: type === "map" });
        if (type === "list" && !Array.isArray(value)) throw new Error("expected a list: - item lines");
        def[field] = value;
      } catch (e) {
        c.focus();
        throw new Error(`${field}: ${e.message}`);
      }
    } else if (c.value.trim() !== "" || type === "text") def[field] = c.value.trim();
  }
  return def;
}

/// The form for a new definition (`current` null) or for changing one.
export function definitionForm(kind, current, saved) {
  const value = current || DEFAULTS[kind] || {};
  const message = messageLine();
  const form = el(
    "form",
    { class: "definition", "aria-label": current ? `Change ${current.name}` : `New ${kind.slice(0, -1)}` },
    FIELDS[kind].map((f) => input(kind, f, value[f[0]])),
    el("div", { class: "actions" }, el("button", { type: "submit", disabled: !mayDefine(kind) }, current ? "Save" : "Create")),
    message,
  );
  if (current) form.elements.name.readOnly = true;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const def = await read(kind, form);
      const stored = current
        ? await api("PUT", `/api/v1/${kind}/${encodeURIComponent(current.name)}`, def)
        : await api("POST", `/api/v1/${kind}`, def);
      message.note(`${current ? "Saved" : "Created"} ${stored.name}`);
      saved(stored);
    } catch (err) {
      message.fail(err);
    }
  });
  return form;
}

/// A delete button with confirmation.
export function deleteButton(kind, name, gone) {
  const message = messageLine();
  const button = el(
    "button",
    {
      type: "button",
      class: "danger",
      disabled: !canDeploy(),
      onclick: async () => {
        if (!confirm(`Delete ${kind.slice(0, -1)} ${name}?`)) return;
        try {
          await api("DELETE", `/api/v1/${kind}/${encodeURIComponent(name)}`);
          gone();
        } catch (e) {
          message.fail(e);
        }
      },
    },
    "Delete",
  );
  return el("div", { class: "actions" }, button, message);
}

// Hosts are admins' to define; the rest deployers'.
const mayDefine = (kind) => (kind === "hosts" ? isAdmin() : canDeploy());
const link = (kind, name) => el("a", { href: `#/${kind}/${encodeURIComponent(name)}` }, name);

export async function objectsPage(kind, view, [name]) {
  if (name === "new") {
    view.append(el("h2", {}, `New ${kind.slice(0, -1)}`), definitionForm(kind, null, (d) => (location.hash = `#/${kind}/${encodeURIComponent(d.name)}`)));
    return;
  }
  if (name) return objectPage(kind, view, name);
  const page = await api("GET", `/api/v1/${kind}?limit=1000`);
  const columns = [["Name", (d) => link(kind, d.name)]];
  for (const [field, , label] of FIELDS[kind].slice(1, 4)) {
    columns.push([label, (d) => (d[field] === undefined ? "" : typeof d[field] === "object" ? JSON.stringify(d[field]) : String(d[field]))]);
  }
  view.append(
    el("h2", {}, kind[0].toUpperCase() + kind.slice(1)),
    mayDefine(kind) ? el("p", {}, el("a", { href: `#/${kind}/new`, class: "button" }, `New ${kind.slice(0, -1)}`)) : "",
    table(`${page.total} ${kind}`, columns, page.items),
  );
  if (kind === "hosts") view.append(await coordinatorsView(), await fleetTable());
}

async function objectPage(kind, view, name) {
  const current = await api("GET", `/api/v1/${kind}/${encodeURIComponent(name)}`);
  view.append(
    el("p", {}, el("a", { href: `#/${kind}` }, `All ${kind}`)),
    el("h2", {}, `${kind.slice(0, -1)} ${name}`),
    definitionForm(kind, current, () => {}),
    deleteButton(kind, name, () => (location.hash = `#/${kind}`)),
  );
  if (kind === "stacks") view.append(await stackImages(name));
  if (kind === "apps") view.append(appBuild(name));
}

/// Which coordinator leads, and every coordinator of the model (hosts.leader).
async function coordinatorsView() {
  const v = await api("GET", "/api/v1/leader");
  const lead = v.holder
    ? `Leader: ${v.holder}${v.address ? ` at ${v.address}` : ""}, lease epoch ${v.epoch}`
    : v.model === "sqlite"
      ? `Leader: ${v.this} (the model is in SQLite: one coordinator)`
      : "Leader: none right now (the lease ran out; a standby takes it within the lease)";
  const role = v.leads ? "leads" : "is a standby and hands the leader's duties to it";
  const section = el(
    "section",
    { id: "coordinators", "aria-label": "Coordinators" },
    el("p", {}, `${lead}. This coordinator, ${v.this}, ${role}; the model is in ${v.model}.`),
  );
  if (v.coordinators.length > 1) {
    section.append(table("Coordinators of this model", [
      ["Name", (c) => c.name],
      ["Peer address", (c) => c.address || "-"],
      ["Fleet CA sha256", (c) => c.ca_sha256],
    ], v.coordinators));
  }
  return section;
}

/// Every host with its state, heartbeat and procs (hosts.list).
async function fleetTable() {
  const rows = await api("GET", "/api/v1/fleet");
  return table("Hosts as vrd sees them", [
    ["Host", (h) => h.host],
    ["State", (h) => el("span", { class: `host ${h.state}` }, h.state === "down" ? "down (unreachable)" : h.state)],
    ["Squad", (h) => h.squad],
    ["Active", (h) => (h.draining ? "draining" : h.active ? "yes" : "no")],
    ["Procs", (h) => (h.procs === null ? "?" : h.procs)],
    ["Last heartbeat", (h) => time(h.last_heartbeat)],
    ["Version", (h) => h.version || "-"],
  ], rows);
}

/// A stack's images: build a new one and watch its log, activate one.
async function stackImages(stack) {
  const section = el("section", { "aria-label": "Images" });
  const message = messageLine();
  const log = el("pre", { class: "log", id: "image-log", tabindex: "0" });
  const watch = (image) => {
    log.textContent = "";
    followLines(log, `/api/v1/streams/stacks/${encodeURIComponent(stack)}/${encodeURIComponent(image)}`);
  };
  const render = async () => {
    const images = await api("GET", `/api/v1/stacks/${encodeURIComponent(stack)}/images`);
    section.replaceChildren(
      el("h3", {}, "Images"),
      el("button", { type: "button", disabled: !canDeploy(), onclick: build }, "Build an image"),
      message,
      table(`${images.length} images`, [
        ["Image", (i) => i.name],
        ["Status", (i) => el("span", { class: `status ${i.status}` }, i.status)],
        ["Active", (i) => (i.active ? "active" : el("button", { type: "button", disabled: !canDeploy() || i.status !== "success", onclick: () => activate(i.name) }, "Activate"))],
        ["Made", (i) => time(i.created)],
        ["Log", (i) => el("button", { type: "button", onclick: () => watch(i.name) }, "Show log")],
        ["Error", (i) => i.error || ""],
      ], images),
      log,
    );
  };
  const build = async () => {
    try {
      const image = await api("POST", `/api/v1/stacks/${encodeURIComponent(stack)}/build`, {});
      message.note(`Building image ${image.name}`);
      await render();
      watch(image.name);
    } catch (e) {
      message.fail(e);
    }
  };
  const activate = async (image) => {
    try {
      await api("POST", `/api/v1/stacks/${encodeURIComponent(stack)}/activate`, { image });
      await render();
      message.note(`${image} is the active image`);
    } catch (e) {
      message.fail(e);
    }
  };
  await render();
  return section;
}

/// Build the app at a version; the build's page follows its compile output.
function appBuild(app) {
  const message = messageLine();
  const version = el("input", { id: "build-version", placeholder: "v1, main, a revision" });
  const form = el(
    "form",
    { class: "inline", "aria-label": "Build" },
    el("h3", {}, "Build"),
    el("label", { for: "build-version" }, "Version"),
    version,
    el("button", { type: "submit", disabled: !canDeploy() }, "Build"),
    message,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const started = await api("POST", `/api/v1/apps/${encodeURIComponent(app)}/build`, { version: version.value.trim() });
      location.hash = `#/builds/trace/${encodeURIComponent(started.trace)}`;
    } catch (err) {
      message.fail(err);
    }
  });
  return form;
}
