// taskiq-go dashboard: a hash-routed page that polls the server's JSON
// endpoints and redraws. No framework and no build step; every value from
// the server goes into the page as text, never as HTML.
"use strict";

const REFRESH_MS = 2000;
let session = { allow_actions: false, sample_every: 5 };
let timer = null;
let current = null; // { name, params, update }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)taskiq_csrf=([^;]+)/);
  return m ? m[1] : "";
}

async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
  return body;
}

async function act(path, body) {
  const r = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify(body),
  });
  const out = await r.json().catch(() => ({}));
  const lines = (out.outcomes || []).map((o) => o.id + ": " + o.outcome);
  if (!r.ok) {
    flash((out.error || r.statusText) + (lines.length ? " — " + lines.join(", ") : ""), true);
  } else {
    flash(lines.join(", ") || "done", false);
  }
  refresh();
}

// armed runs fn on a second click within five seconds: one stray click
// must not cancel a whole group.
function armed(btn, prompt, fn) {
  if (btn.dataset.armed === "1") {
    btn.dataset.armed = "";
    fn();
    return;
  }
  const label = btn.textContent;
  btn.dataset.armed = "1";
  btn.textContent = prompt;
  setTimeout(() => { btn.dataset.armed = ""; btn.textContent = label; }, 5000);
}

function flash(msg, isError) {
  const f = document.getElementById("flash");
  f.textContent = msg;
  f.className = "flash" + (isError ? " error" : "");
  f.hidden = false;
  f.dataset.kind = isError ? "error" : "ok";
}

function stateBadge(s) { return el("span", { class: "state state-" + s, "data-state": s }, s.replace("_", " ")); }
function dash(v) { return v === undefined || v === null || v === "" ? "-" : v; }
function fmtTime(t) { return t ? new Date(t).toLocaleString() : "-"; }
function fmtAge(sec) {
  if (sec < 1) return "now";
  if (sec < 90) return Math.round(sec) + " s ago";
  if (sec < 5400) return Math.round(sec / 60) + " min ago";
  return Math.round(sec / 3600) + " h ago";
}
function taskLink(id) { return el("a", { href: "#/task/" + encodeURIComponent(id), class: "mono" }, id); }
function groupLink(g) { return g ? el("a", { href: "#/tasks?group=" + encodeURIComponent(g) }, g) : "-"; }
function labelsText(l) { return Object.entries(l || {}).map(([k, v]) => k + "=" + v).join(" "); }
const FINAL = ["succeeded", "failed", "cancelled", "timed_out"];

function table(id, headers, rows, empty) {
  const head = el("tr", {}, headers.map((h) => el("th", { class: h.endsWith("#") ? "num" : "" }, h.replace(/#$/, ""))));
  const body = el("tbody", {}, rows.length ? rows : el("tr", { class: "empty" }, el("td", { colspan: headers.length }, empty)));
  return el("table", { id }, el("thead", {}, head), body);
}

function replace(id, node) {
  const old = document.getElementById(id);
  if (old) old.replaceWith(node);
}

function sparkline(hist) {
  const w = 160, h = 28;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  if (!hist || hist.length < 2) return svg;
  const t0 = hist[0][0], t1 = hist[hist.length - 1][0] || t0 + 1;
  const top = Math.max(1, ...hist.map((s) => Math.max(s[1], s[2], s[3])));
  ["v", "f", "d"].forEach((cls, i) => {
    const pts = hist.map((s) => {
      const x = ((s[0] - t0) / Math.max(1, t1 - t0)) * (w - 2) + 1;
      const y = h - 2 - (s[i + 1] / top) * (h - 4);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    const pl = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    pl.setAttribute("class", cls);
    pl.setAttribute("points", pts.join(" "));
    svg.append(pl);
  });
  return svg;
}

// ---- pages ----

const pages = {
  queues: {
    render() {
      return [el("h1", {}, "Queues"),
        el("p", { class: "legend" }, el("span", { class: "v" }, "— visible"), el("span", { class: "f" }, "— in flight"),
          el("span", { class: "d" }, "— delayed"), el("span", { class: "muted" }, "history sampled every " + session.sample_every + " s while this server runs")),
        el("div", { id: "queues-table" })];
    },
    async update() {
      const d = await getJSON("api/queues");
      const rows = d.queues.map((q) => el("tr", { "data-queue": q.name, "data-band": q.band || "" },
        el("td", {}, q.name), el("td", {}, dash(q.band)),
        el("td", { class: "num" }, q.visible), el("td", { class: "num" }, q.in_flight), el("td", { class: "num" }, q.delayed),
        el("td", {}, sparkline(q.history))));
      replace("queues-table", table("queues-table", ["Queue", "Band", "Visible#", "In flight#", "Delayed#", "History"], rows, "no queues"));
    },
  },

  workers: {
    render() { return [el("h1", {}, "Workers"), el("div", { id: "workers-table" })]; },
    async update() {
      const d = await getJSON("api/workers");
      const rows = d.workers.map((w) => el("tr", { "data-worker": w.id, class: w.stale ? "stale" : "" },
        el("td", {}, w.host), el("td", { class: "mono" }, w.id), el("td", {}, dash(w.version)),
        el("td", {}, (w.queues || []).join(", ")),
        el("td", { class: "num" }, (w.running || []).length + " / " + w.slots),
        el("td", {}, (w.running || []).length ? (w.running || []).map((id) => el("div", {}, taskLink(id))) : "-"),
        el("td", { class: "num" }, w.finished),
        el("td", {}, fmtAge(w.age_seconds), w.stale ? el("span", { class: "stale" }, " (stale)") : "")));
      replace("workers-table", table("workers-table", ["Host", "Worker", "Version", "Queues", "Slots#", "Running", "Finished#", "Heartbeat"], rows, "no worker has a heartbeat record"));
    },
  },

  tasks: {
    render(params) {
      const f = el("form", { class: "filters", id: "task-filters", onsubmit: (ev) => {
        ev.preventDefault();
        const q = new URLSearchParams();
        for (const k of ["group", "label", "state", "since"]) {
          const v = f.elements[k].value.trim();
          if (v) q.set(k, v);
        }
        location.hash = "#/tasks" + (q.toString() ? "?" + q : "");
      } },
      el("label", {}, "Group", el("input", { name: "group", list: "known-groups", value: params.get("group") || "", size: 28 })),
      el("datalist", { id: "known-groups" }),
      el("label", {}, "Label", el("input", { name: "label", placeholder: "key=value", value: params.get("label") || "", size: 16 })),
      el("label", {}, "State", el("select", { name: "state" }, ["", "queued", "running", "succeeded", "failed", "cancelled", "timed_out", "lost"]
        .map((s) => el("option", { value: s, selected: s === (params.get("state") || "") }, s || "any")))),
      el("label", {}, "Submitted within", el("input", { name: "since", placeholder: "1h", value: params.get("since") || "", size: 6 })),
      el("button", { type: "submit" }, "Filter"));
      const group = params.get("group");
      return [el("h1", {}, group ? "Tasks of group " + group : "Tasks"), f,
        group && session.allow_actions ? el("p", {}, el("button", { class: "danger", id: "cancel-group", onclick: (ev) => armed(ev.target, "Click again to cancel every task of " + group, () => act("api/cancel", { group })) }, "Cancel every task of this group")) : null,
        el("div", { id: "task-summary", class: "chips" }), el("div", { id: "tasks-table" }),
        group ? null : el("p", { class: "note", id: "tasks-scope" },
          "Without a group this lists the newest tasks of the history (as taskiq-go tasks does), up to 200."),
        group ? null : el("div", { id: "group-list" })];
    },
    async once(params) {
      if (params.get("group")) return;
      const d = await getJSON("api/groups");
      replace("group-list", el("div", { id: "group-list" }, el("h2", {}, "Groups in the bucket" + (d.more ? " (first " + d.groups.length + ")" : "")),
        el("p", { class: "chips" }, d.groups.length ? d.groups.map((g) => el("a", { class: "chip", href: "#/tasks?group=" + encodeURIComponent(g) }, g)) : "none")));
    },
    async update(params) {
      const q = new URLSearchParams();
      for (const k of ["group", "label", "state", "since"]) if (params.get(k)) q.set(k, params.get(k));
      const d = await getJSON("api/tasks" + (q.toString() ? "?" + q : ""));
      const dl = document.getElementById("known-groups");
      if (dl) dl.replaceChildren(...d.groups.map((g) => el("option", { value: g })));
      const chips = Object.entries(d.summary).sort().map(([s, n]) => el("span", { class: "chip", "data-state": s }, stateBadge(s), " " + n));
      const total = Object.values(d.summary).reduce((a, b) => a + b, 0);
      replace("task-summary", el("div", { id: "task-summary", class: "chips" }, chips, el("span", { class: "chip muted" }, total + " tasks")));
      const rows = d.tasks.map((t) => el("tr", { "data-id": t.id, "data-state": t.state },
        el("td", {}, taskLink(t.id)), el("td", {}, groupLink(t.group)), el("td", {}, stateBadge(t.state)),
        el("td", { class: "num" }, dash(t.exit_code)), el("td", { class: "num" }, t.attempt || "-"), el("td", {}, dash(t.worker)),
        el("td", { class: "mono" }, labelsText(t.labels)), el("td", {}, fmtTime(t.submitted_at)), el("td", {}, fmtTime(t.finished_at)),
        el("td", {}, session.allow_actions && !FINAL.includes(t.state)
          ? el("button", { class: "danger", "data-action": "cancel", onclick: () => act("api/cancel", { ids: [t.id] }) }, "Cancel") : "")));
      replace("tasks-table", table("tasks-table", ["Task", "Group", "State", "Exit#", "Attempt#", "Worker", "Labels", "Submitted", "Finished", ""], rows, "no tasks"));
    },
  },

  task: {
    render(params) {
      return [el("h1", {}, "Task ", el("span", { class: "mono" }, params.get("id"))), el("div", { id: "task-meta" }), el("div", { id: "task-attempts" })];
    },
    async update(params) {
      const t = await getJSON("api/tasks/" + encodeURIComponent(params.get("id")));
      const meta = el("dl", { class: "meta", id: "task-meta", "data-state": t.state },
        el("dt", {}, "State"), el("dd", { id: "task-state" }, stateBadge(t.state), t.cancel_requested && !FINAL.includes(t.state) ? " (cancel requested)" : "",
          session.allow_actions && !FINAL.includes(t.state) ? el("button", { class: "danger", id: "cancel-task", onclick: () => act("api/cancel", { ids: [t.id] }) }, "Cancel") : ""),
        el("dt", {}, "Command"), el("dd", { class: "mono", id: "task-argv" }, (t.argv || []).map((a) => /^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)).join(" ")),
        el("dt", {}, "Environment"), el("dd", { class: "mono" }, (t.env_names || []).join(" ") || "-", (t.env_names || []).length ? el("span", { class: "muted" }, " (values not shown)") : ""),
        el("dt", {}, "Directory"), el("dd", { class: "mono" }, dash(t.dir)),
        el("dt", {}, "Group"), el("dd", {}, groupLink(t.group)),
        el("dt", {}, "Queue / priority"), el("dd", {}, dash(t.queue) + " / " + t.priority),
        el("dt", {}, "Labels"), el("dd", { class: "mono" }, labelsText(t.labels) || "-"),
        el("dt", {}, "Timeout / attempts"), el("dd", {}, dash(t.timeout) + " / " + (t.attempt || 0) + " of " + t.max_attempts),
        el("dt", {}, "Submitted / finished"), el("dd", {}, fmtTime(t.submitted_at) + " / " + fmtTime(t.finished_at)),
        t.error ? [el("dt", {}, "Error"), el("dd", {}, t.error)] : null);
      replace("task-meta", meta);
      const atts = (t.attempts || []).map((a) => el("section", { class: "attempt", "data-attempt": a.n, "data-state": a.state },
        el("h3", {}, "Attempt " + a.n + " ", stateBadge(a.state)),
        el("dl", { class: "meta" },
          el("dt", {}, "Worker"), el("dd", {}, dash(a.worker)),
          el("dt", {}, "Started / finished"), el("dd", {}, fmtTime(a.started_at) + " / " + fmtTime(a.finished_at)),
          a.heartbeat_at && !a.finished_at ? [el("dt", {}, "Last heartbeat"), el("dd", {}, fmtTime(a.heartbeat_at))] : null,
          el("dt", {}, "Exit"), el("dd", {}, dash(a.exit_code) + (a.signal ? " (" + a.signal + ")" : "")),
          a.error ? [el("dt", {}, "Error"), el("dd", {}, a.error)] : null),
        stream("stdout", a), stream("stderr", a)));
      replace("task-attempts", el("div", { id: "task-attempts" }, atts.length ? atts.reverse() : el("p", { class: "note" }, "No attempt has started yet.")));
    },
  },

  dlq: {
    render() {
      return [el("h1", {}, "Dead letters"),
        session.allow_actions ? el("p", {}, el("button", { id: "redrive-selected", onclick: () => {
          const ids = [...document.querySelectorAll("#dlq-table input[type=checkbox]:checked")].map((c) => c.value);
          if (ids.length) act("api/redrive", { ids });
        } }, "Redrive selected")) : null,
        el("div", { id: "dlq-table" })];
    },
    async update() {
      const d = await getJSON("api/dlq");
      const checked = new Set([...document.querySelectorAll("#dlq-table input[type=checkbox]:checked")].map((c) => c.value));
      const rows = d.dead_letters.map((m) => el("tr", { "data-message": m.message_id, "data-task": m.task_id || "" },
        session.allow_actions ? el("td", {}, el("input", { type: "checkbox", value: m.message_id, checked: checked.has(m.message_id) })) : null,
        el("td", { class: "mono" }, m.message_id), el("td", {}, m.task_id ? taskLink(m.task_id) : "-"),
        el("td", {}, m.reason), el("td", { class: "mono" }, dash(m.source_queue)), el("td", {}, dash(m.worker)),
        el("td", {}, fmtTime(m.sent_at)), el("td", { class: "num" }, m.receive_count),
        el("td", { class: "mono" }, m.body.length > 80 ? m.body.slice(0, 80) + "…" : m.body)));
      const heads = ["Message", "Task", "Reason", "Source queue", "Worker", "Sent", "Receives#", "Body"];
      replace("dlq-table", table("dlq-table", session.allow_actions ? [""].concat(heads) : heads, rows, "the dead-letter queue is empty"));
    },
  },
};

function stream(name, a) {
  const s = a[name];
  const id = name + "-" + a.n;
  if (s.live) {
    return [el("h4", {}, name + " ", el("span", { class: "muted" }, "live, " + s.size + " bytes so far" + (s.truncated ? ", the last part shown" : ""))),
      el("pre", { id, class: s.text ? "" : "empty", "data-stored": "live", "data-size": s.size }, s.text || "(nothing yet)")];
  }
  if (!s.stored) {
    return [el("h4", {}, name), el("pre", { id, class: "empty", "data-stored": "false" },
      FINAL.includes(a.state) || a.finished_at ? "(nothing)" : "(stored when the attempt ends)")];
  }
  return [el("h4", {}, name + " ", el("span", { class: "muted" }, s.size + " bytes" + (s.truncated ? ", shown in part" : ""))),
    el("pre", { id, class: s.text ? "" : "empty", "data-stored": "true", "data-size": s.size }, s.text || "(empty)")];
}

// ---- routing and refresh ----

function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "queues";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  let name = path;
  if (path.startsWith("task/")) {
    name = "task";
    params.set("id", decodeURIComponent(path.slice(5)));
  }
  if (!pages[name]) name = "queues";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === (name === "task" ? "tasks" : name)));
  document.getElementById("flash").hidden = true;
  current = { name, params };
  document.getElementById("main").replaceChildren(...pages[name].render(params).flat().filter(Boolean));
  document.body.dataset.page = name;
  if (pages[name].once) pages[name].once(params).catch((e) => flash(e.message, true));
  refresh();
}

async function refresh() {
  clearTimeout(timer);
  const page = current;
  const st = document.getElementById("status");
  try {
    await pages[page.name].update(page.params);
    if (page !== current) return;
    st.textContent = "updated " + new Date().toLocaleTimeString();
    st.className = "status";
    document.body.dataset.updated = String(Date.now());
  } catch (e) {
    st.textContent = "error: " + e.message;
    st.className = "status error";
  }
  timer = setTimeout(refresh, page.name === "dlq" ? 3 * REFRESH_MS : REFRESH_MS);
}

async function start() {
  try { session = await getJSON("api/session"); } catch (e) { /* keep the defaults: read-only */ }
  document.body.dataset.actions = String(session.allow_actions);
  window.addEventListener("hashchange", route);
  route();
}

start();
