// vr's dashboard: the shell. Logs in (/session, /login, /logout) and routes #/PAGE/... to a page:
// procs.js, swarms.js, objects.js (apps, buildpacks, stacks, squads, hosts, ingredients) and
// activity.js (builds, events, audit, users). Each page renders into #view; ui.js has what they
// share.
import { procsPage } from "./procs.js";
import { swarmsPage } from "./swarms.js";
import { objectsPage } from "./objects.js";
import { buildsPage, eventsPage, auditPage, usersPage } from "./activity.js";
import { $, api, el, isAdmin, leave, session } from "./ui.js";

const pages = {
  procs: procsPage,
  swarms: swarmsPage,
  builds: buildsPage,
  events: eventsPage,
  audit: auditPage,
  users: usersPage,
};
for (const kind of ["apps", "buildpacks", "stacks", "squads", "hosts", "ingredients"]) {
  pages[kind] = (view, rest) => objectsPage(kind, view, rest);
}

async function show() {
  leave();
  const [page, ...rest] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const name = pages[page] ? page : "procs";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const view = $("view");
  view.replaceChildren();
  try {
    await pages[name](view, rest.filter(Boolean));
  } catch (e) {
    view.append(el("p", { role: "alert", class: "message error" }, e.message));
  }
}

// A page left for another (a reload, a link) closes its streams itself: Chromium otherwise holds
// each event stream's connection, and after six of them (HTTP/1.1's limit per host) every
// request of the next page waits.
window.addEventListener("pagehide", leave);

function loggedIn(s) {
  Object.assign(session, { csrf: s.csrf, user: s.user, role: s.role });
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  for (const a of document.querySelectorAll("[data-role=admin]")) a.hidden = !isAdmin();
  $("who").textContent = `${s.user} (${s.role})`;
  window.addEventListener("hashchange", show);
  show();
}

async function start() {
  try {
    loggedIn(await api("GET", "/session"));
  } catch {
    $("login").hidden = false;
    $("name").focus();
  }
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const s = await api("POST", "/login", { name: $("name").value, password: $("password").value });
    $("password").value = "";
    loggedIn(s);
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});
$("logout").addEventListener("click", async () => {
  await api("POST", "/logout").catch(() => {});
  location.hash = "";
  location.reload();
});
start();
