// The console's shell: the key form, the router (#/page/name) and the
// polling timers of the page on screen (stopped when it changes).
import { h, getKey, setKey, forgetKey, errorBox } from "./dom.js";
import { queryPage } from "./query.js";
import { tablesPage, tablePage } from "./tables.js";
import { streamsPage, streamPage } from "./streams.js";
import { pipelinesPage, pipelinePage } from "./pipelines.js";
import { functionsPage, functionPage } from "./functions.js";

const routes = {
  query: [queryPage],
  tables: [tablesPage, tablePage],
  streams: [streamsPage, streamPage],
  pipelines: [pipelinesPage, pipelinePage],
  functions: [functionsPage, functionPage],
};

const main = document.getElementById("main");
let timers = [];
let generation = 0;

// ctx is what a page gets: every(ms, fn) polls fn (first at once) while the
// page is on screen; live() is false once the user has left it.
function pageContext() {
  const gen = ++generation;
  return {
    live: () => gen === generation,
    every(ms, fn) {
      let stopped = false;
      const run = async () => {
        if (stopped || gen !== generation) return;
        try { await fn(); } catch (e) { console.warn(e); }
        if (!stopped && gen === generation) timers.push(setTimeout(run, ms));
      };
      run();
    },
  };
}

function stopTimers() {
  for (const t of timers) clearTimeout(t);
  timers = [];
}

function loginForm(message) {
  const input = h("input", { id: "key", type: "password", autocomplete: "off", placeholder: "sluice_…", size: 48 });
  const form = h("form", { id: "login", class: "card narrow", onsubmit: (e) => {
    e.preventDefault();
    if (!input.value.trim()) return;
    setKey(input.value.trim());
    render();
  } },
  h("h2", {}, "API key"),
  h("p", {}, "Type a sluice API key. It is kept in this tab only (sessionStorage) and sent as ",
    h("code", {}, "Authorization: Bearer"), " with every call. ",
    h("code", {}, "sluice up"), " writes its admin key to ", h("code", {}, "sluice-data/admin.key"), "."),
  message ? errorBox(message) : null,
  h("p", {}, input, " ", h("button", { id: "login-button", type: "submit" }, "Use key")));
  return form;
}

function render(message) {
  stopTimers();
  const ctx = pageContext();
  const logout = document.getElementById("logout");
  logout.hidden = !getKey();
  if (!getKey()) {
    main.replaceChildren(loginForm(message));
    document.getElementById("key").focus();
    return;
  }
  const [page, ...rest] = (location.hash.replace(/^#\/?/, "") || "query").split("/");
  const name = rest.map(decodeURIComponent).join("/");
  const route = routes[page] || routes.query;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === "#/" + page);
  }
  const view = name ? route[1] : route[0];
  main.replaceChildren(view(ctx, name));
}

window.addEventListener("hashchange", () => render());
window.addEventListener("sluice:unauthorized", (e) => render(e.detail));
document.getElementById("logout").addEventListener("click", () => { forgetKey(); render(); });
render();
