import { drawHistory } from "./charts.js";
import { createApprovals } from "./approvals.js";
// AgentMesh operator UI: one ES module, no framework, nothing loaded from another origin.
// Every value that comes from the API or the token is rendered as text (el() / textContent),
// never parsed as HTML. The token lives in sessionStorage and travels only in the
// Authorization header and in the WebSocket's first (auth) message.

const TOKEN_KEY = "agentmesh.token";
const TENANT_KEY = "agentmesh.tenant";
const PAGE_SIZE = 20;
const VIEWS = ["overview", "agents", "tasks", "approvals", "audit", "federated"];
const LIVE_CHANNELS = ["agents", "tasks", "metrics", "approvals"];

const state = {
  config: null, // /ui/config.json: roles, operations, statuses (the server's own tables)
  token: null,
  claims: null, // {sub, tenant, roles, exp} read from the token payload
  tenant: null, // the tenant the views show (a platform admin may pick another)
  view: null,
  expiryTimer: 0,
};

const $ = (id) => document.getElementById(id);

// -- DOM -----------------------------------------------------------------------------------
/** An element; string children become text nodes, props set attributes or listeners. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function cell(label, ...children) {
  return el("td", { "data-label": label }, ...children);
}

/** A table row that opens its detail on click or Enter. */
function clickable(tr, open) {
  tr.tabIndex = 0;
  tr.addEventListener("click", open);
  tr.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target === tr) open();
  });
  return tr;
}

const GOOD = new Set(["AVAILABLE", "completed", "success", "ok", "healthy"]);
const BUSY = new Set(["BUSY", "assigned", "running", "offered", "submitted", "retrying"]);
const WARN = new Set(["PAUSED", "UNHEALTHY", "timed_out", "denied", "degraded", "cancelled", "absent"]);
const BAD = new Set(["TERMINATED", "QUARANTINED", "failed", "dead_lettered", "rejected", "failure", "down", "unhealthy", "timeout", "misaligned"]);

function badge(status) {
  const s = String(status ?? "");
  const tone = GOOD.has(s) ? "good" : BUSY.has(s) ? "busy" : WARN.has(s) ? "warn" : BAD.has(s) ? "bad" : "";
  return el("span", { class: `badge ${tone}`.trim(), "data-status": s }, s || "-");
}

function fmtTime(iso) {
  if (!iso) return "-";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

function timeCell(label, iso) {
  return el("td", { "data-label": label, title: iso || null }, fmtTime(iso));
}

function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const h = Math.floor(s / 3600);
  return h < 48 ? `${h} h ${Math.floor((s % 3600) / 60)} min` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** Seconds as "12 ms" below one second, else as fmtDuration does. */
function fmtSeconds(seconds) {
  if (typeof seconds !== "number") return "-";
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : fmtDuration(seconds);
}

/** A task's lifecycle: one line per step (status, time, agent, attempt, detail). */
function timeline(steps) {
  if (!Array.isArray(steps) || steps.length === 0) return "-";
  return el("ol", { class: "timeline" }, ...steps.map((s) => el("li", { "data-status": s.status },
    badge(s.status), ` ${fmtTime(s.at)}`,
    s.agent_id ? ` on ${s.agent_id}` : "", ` (attempt ${s.attempt})`,
    s.detail ? ` - ${s.detail}` : "")));
}

/** How long ago an ISO time was, e.g. "4 s ago". */
function age(iso) {
  if (!iso) return "-";
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  return Number.isFinite(seconds) ? `${fmtDuration(Math.max(0, seconds))} ago` : "-";
}

const fmtNumber = (n) => (typeof n === "number" ? n.toLocaleString() : String(n ?? "-"));
const enc = encodeURIComponent;

// -- message line ----------------------------------------------------------------------------
let messageTimer = 0;

function say(text, kind = "info") {
  const box = $("message");
  $("message-text").textContent = text;
  box.title = text;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(messageTimer);
  if (kind !== "error") messageTimer = setTimeout(() => { box.hidden = true; }, 6000);
}

function sayError(err, doing) {
  if (err instanceof ApiError && err.status === 401) return; // signOut() already said it
  const code = err.code ? ` (${err.code})` : "";
  say(`${doing}: ${err.message}${code}`, "error");
}

// -- API ---------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** JSON from the control plane; a non-2xx answer throws ApiError with the flat body's text. */
async function api(path, { method = "GET", body, auth = true, okStatuses = [] } = {}) {
  const headers = { Accept: "application/json" };
  if (auth) headers.Authorization = `Bearer ${state.token}`;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, "NETWORK_ERROR", "cannot reach the control plane");
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (res.ok || okStatuses.includes(res.status)) return data;
  const message = data && typeof data.error === "string" ? data.error : `HTTP ${res.status}`;
  const err = new ApiError(res.status, data && typeof data.code === "string" ? data.code : "", message);
  if (res.status === 401 && auth) signOut(`The control plane refused the token: ${message}`);
  throw err;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

const tenantPath = () => `/v1/tenants/${enc(state.tenant)}`;

/** "0.93 aligned" from an agent's metadata.alignment (aligned >= 0.7, partially_aligned >= 0.49), or "-". */
function alignmentText(alignment) {
  if (!alignment || typeof alignment.score !== "number") return "-";
  return `${alignment.score.toFixed(2)} ${alignment.status || ""}`.trim();
}

// -- token and permissions -----------------------------------------------------------------------
/** The claims the UI shows; the server verifies the signature on every call. */
function decodeClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("a JWT has three dot-separated parts");
  let payload;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
    payload = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new Error("the token's payload is not readable JSON");
  }
  if (!payload || typeof payload.sub !== "string" || typeof payload.tenant_id !== "string") {
    throw new Error("the token has no sub or tenant_id claim");
  }
  if (typeof payload.exp === "number" && payload.exp * 1000 <= Date.now()) throw new Error("the token has expired");
  const raw = Array.isArray(payload.roles) ? payload.roles : typeof payload.roles === "string" ? [payload.roles] : [];
  return { sub: payload.sub, tenant: payload.tenant_id, roles: raw.map((r) => String(r).toLowerCase()), exp: payload.exp };
}

function isPlatformAdmin() {
  return Boolean(state.claims && state.config) &&
    state.claims.tenant === state.config.platform_tenant && state.claims.roles.includes("admin");
}

/** Whether the token's roles allow an operation (the server's permission table). */
function can(operation) {
  if (!state.claims || !state.config) return false;
  const permission = state.config.operations[operation];
  if (!permission) return false;
  const granted = state.claims.roles.some((r) => (state.config.roles[r] || []).includes(permission));
  if (!granted) return false;
  return !state.config.platform_operations.includes(operation) || isPlatformAdmin();
}

// -- listings (table + pager + loading/empty states) ------------------------------------------------
class Listing {
  constructor({ table, pager, noun, key, load, row, empty }) {
    this.table = $(table);
    this.tbody = this.table.querySelector("tbody");
    this.columns = this.table.querySelectorAll("thead th").length;
    this.pager = $(pager);
    this.noun = noun;
    this.key = key;
    this.load = load;
    this.row = row;
    this.empty = empty;
    this.offset = 0;
    this.cursor = null; // keyset listings (tasks): where this page starts
    this.back = []; // the {offset, cursor} of the pages before, for "Previous"
    this.rows = new Map(); // id -> {item, tr}
    this.seq = 0;
    this.timer = 0;
  }

  placeholder(text) {
    this.rows.clear();
    this.tbody.replaceChildren(el("tr", {}, el("td", { class: "placeholder", colspan: this.columns }, text)));
  }

  clear() {
    this.seq += 1;
    this.offset = 0;
    this.cursor = null;
    this.back = [];
    this.placeholder("");
    this.pager.replaceChildren();
  }

  /** Load the current page; `quiet` keeps the rows on screen meanwhile (live refreshes). */
  async reload({ quiet = false } = {}) {
    const seq = ++this.seq;
    clearTimeout(this.timer);
    if (!quiet) this.placeholder(`Loading ${this.noun}…`);
    this.table.setAttribute("aria-busy", "true");
    try {
      const { items, pagination, nextCursor } = await this.load(this.offset, PAGE_SIZE, this.cursor);
      if (seq !== this.seq) return;
      if (!items.length && this.offset > 0 && pagination.total > 0) {
        this.previous(); // the page emptied under us
        this.reload({ quiet });
        return;
      }
      this.render(items, pagination, nextCursor);
    } catch (err) {
      if (seq !== this.seq) return;
      this.placeholder(`Could not load ${this.noun}.`);
      this.pager.replaceChildren();
      sayError(err, `Loading ${this.noun}`);
    } finally {
      if (seq === this.seq) this.table.removeAttribute("aria-busy");
    }
  }

  /** A quiet reload shortly (coalesces bursts of live updates). */
  soon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reload({ quiet: true }), 250);
  }

  /** Back to the first page (a filter changed). */
  first() {
    this.offset = 0;
    this.cursor = null;
    this.back = [];
  }

  previous() {
    const before = this.back.pop();
    if (before) ({ offset: this.offset, cursor: this.cursor } = before);
    else this.offset = Math.max(0, this.offset - PAGE_SIZE);
  }

  render(items, pagination, nextCursor = null) {
    this.rows.clear();
    if (!items.length) {
      this.placeholder(this.empty());
    } else {
      this.tbody.replaceChildren(...items.map((item) => this.rowFor(item)));
    }
    this.renderPager(items.length, pagination, nextCursor);
  }

  rowFor(item) {
    const tr = this.row(item);
    tr.dataset.id = this.key(item);
    this.rows.set(this.key(item), { item, tr });
    return tr;
  }

  /** Merge a change into a row on screen; false when the row is not on this page. */
  update(id, patch) {
    const found = this.rows.get(id);
    if (!found) return false;
    const item = { ...found.item, ...patch };
    const tr = this.rowFor(item);
    tr.classList.add("flash");
    found.tr.replaceWith(tr);
    return true;
  }

  renderPager(count, p, nextCursor) {
    if (!p || !p.total) {
      this.pager.replaceChildren();
      return;
    }
    const from = this.offset + 1;
    const to = this.offset + count;
    const prev = el("button", { type: "button", class: "secondary small", disabled: this.offset === 0 }, "‹ Previous");
    const next = el("button", { type: "button", class: "secondary small", disabled: !p.has_more }, "Next ›");
    prev.addEventListener("click", () => { this.previous(); this.reload(); });
    next.addEventListener("click", () => {
      if (nextCursor) {
        // keyset: the next page starts after this one's last row, however deep
        this.back.push({ offset: this.offset, cursor: this.cursor });
        this.cursor = nextCursor;
        this.offset += count;
      } else {
        this.back = [];
        this.offset = p.next_offset ?? this.offset + PAGE_SIZE;
      }
      this.reload();
    });
    this.pager.replaceChildren(el("span", {}, `${from}–${to} of ${fmtNumber(p.total)}`), prev, next);
  }
}

function actionButton(label, onClick, tone = "secondary") {
  const button = el("button", { type: "button", class: `${tone} small` }, label);
  button.addEventListener("click", async (event) => {
    event.stopPropagation();
    button.disabled = true;
    try {
      await onClick();
    } finally {
      if (button.isConnected) button.disabled = false;
    }
  });
  return button;
}

function fillSelect(select, values, labels = {}) {
  for (const v of values) select.append(el("option", { value: v }, labels[v] ?? v));
}

// -- detail dialog -----------------------------------------------------------------------------------
const detail = {
  kind: null,
  id: null,

  open(kind, id, title, fields, doc, actions = []) {
    this.kind = kind;
    this.id = id;
    $("detail-title").textContent = title;
    $("detail-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "-")]));
    $("detail-actions").replaceChildren(...actions);
    $("detail-json").textContent = JSON.stringify(doc, null, 2);
    const dialog = $("detail");
    if (!dialog.open) dialog.showModal();
  },

  showing(kind, id) {
    return $("detail").open && this.kind === kind && this.id === id;
  },

  close() {
    if ($("detail").open) $("detail").close();
  },
};

// -- agents ----------------------------------------------------------------------------------------------
const agents = {
  status: "",
  capability: "",
  list: null,
  liveTimer: 0,

  setup() {
    fillSelect($("agents-status"), state.config.agent_statuses);
    $("agents-filter").addEventListener("submit", (e) => {
      e.preventDefault();
      this.status = $("agents-status").value;
      this.capability = $("agents-capability").value.trim();
      this.list.first();
      this.list.reload();
    });
    $("agents-status").addEventListener("change", () => $("agents-filter").requestSubmit());
    this.list = new Listing({
      table: "agents-table",
      pager: "agents-pager",
      noun: "agents",
      key: (a) => a.agent_id,
      load: async (offset, limit) => {
        const q = query({ status: this.status, capabilities: this.capability, limit, offset });
        const data = await api(`${tenantPath()}/agents${q}`);
        return { items: data.agents, pagination: data.pagination };
      },
      row: (a) => this.row(a),
      empty: () => (this.status || this.capability ? "No agent matches this filter." : "No agents in this tenant yet."),
    });
  },

  enter() {
    this.list.reload({ quiet: this.list.rows.size > 0 });
    this.loadLive();
  },

  /** The agents the broker's registry hears (empty when no broker is attached). */
  async loadLive() {
    clearTimeout(this.liveTimer);
    let rows = [];
    try {
      rows = (await api(`${tenantPath()}/agents/live`)).agents;
    } catch (err) {
      sayError(err, "Loading live agents");
    }
    $("live-agents").hidden = rows.length === 0;
    $("live-table").querySelector("tbody").replaceChildren(...rows.map((r) => {
      const seen = r.last_seen ? new Date(r.last_seen * 1000).toISOString() : null;
      const caps = Object.entries(r.capabilities || {}).map(([name, level]) => el("span", { class: "chip" }, `${name} ${level}`));
      return el("tr", { "data-id": r.agent_id },
        el("td", { class: "id", "data-label": "Agent" }, r.agent_id),
        el("td", { "data-label": "Status" }, badge(r.status)),
        cell("Capabilities", el("div", { class: "caps" }, caps)),
        el("td", { class: "num", "data-label": "Load" }, `${Math.round((r.load || 0) * 100)} %`),
        el("td", { class: "num", "data-label": "In flight" }, fmtNumber(r.in_flight)),
        timeCell("Last seen", seen),
      );
    }));
  },

  actions(a) {
    const out = [];
    const act = (op, label, tone) => out.push(actionButton(label, () => this.act(a, op), tone));
    if (can("pause_agent") && (a.status === "AVAILABLE" || a.status === "UNHEALTHY")) act("pause", "Pause");
    if (can("resume_agent") && a.status === "PAUSED") act("resume", "Resume");
    if (can("terminate_agent") && a.status !== "TERMINATED" && a.status !== "BUSY") act("terminate", "Terminate", "danger");
    if (can("release_agent") && a.status === "QUARANTINED") act("release", "Release", "danger");
    return out;
  },

  row(a) {
    const caps = (a.capabilities || []).map((c) => el("span", { class: "chip", title: `level ${c.level}` }, `${c.name} ${c.level}`));
    const tr = el("tr", { class: "row" },
      el("td", { class: "id", "data-label": "Agent" }, a.agent_id),
      cell("Name", a.name),
      cell("Type", a.agent_type),
      el("td", { class: "status", "data-label": "Status" }, badge(a.status)),
      cell("Capabilities", el("div", { class: "caps" }, caps)),
      el("td", { class: "num", "data-label": "Done" }, fmtNumber(a.tasks_completed)),
      el("td", { class: "num", "data-label": "Failed" }, fmtNumber(a.tasks_failed)),
      timeCell("Last heartbeat", a.last_heartbeat),
      el("td", { "data-label": "Actions" }, el("div", { class: "actions" }, this.actions(a))),
    );
    clickable(tr, () => this.show(a));
    if (detail.showing("agent", a.agent_id)) this.show(a);
    return tr;
  },

  show(a) {
    detail.open("agent", a.agent_id, a.agent_id, [
      ["Name", a.name],
      ["Status", badge(a.status)],
      ["Type", a.agent_type],
      ["Description", a.description || "-"],
      ["Capabilities", (a.capabilities || []).map((c) => `${c.name} (${c.level})`).join(", ")],
      ["Tags", (a.tags || []).join(", ") || "-"],
      ["Current task", a.current_task_id],
      ["Running now", (a.active_tasks || []).join(", ") || "-"],
      ["Tasks", `${fmtNumber(a.tasks_assigned)} assigned, ${fmtNumber(a.tasks_completed)} done, ${fmtNumber(a.tasks_failed)} failed`],
      ["Created", fmtTime(a.created_at)],
      ["Last heartbeat", a.last_heartbeat ? `${fmtTime(a.last_heartbeat)} (${age(a.last_heartbeat)})` : "-"],
      ["Alignment", alignmentText((a.metadata || {}).alignment)],
      ["Quarantine", ((a.metadata || {}).quarantine || {}).reason || "-"],
      ["Recent tasks", el("ul", { id: "agent-recent-tasks", class: "recent" }, el("li", {}, "loading ..."))],
    ], a, this.actions(a));
    this.recent(a.agent_id);
  },

  /** The agent's latest tasks, under its detail. */
  async recent(agentId) {
    try {
      const data = await api(`${tenantPath()}/tasks${query({ agent_id: agentId, limit: 5 })}`);
      const list = $("agent-recent-tasks");
      if (!list || !detail.showing("agent", agentId)) return;
      list.replaceChildren(...(data.tasks.length ? data.tasks.map((t) => el("li", {}, badge(t.status), ` ${t.task_id} (${t.task_type}) ${fmtTime(t.updated_at)}`)) : [el("li", {}, "none yet")]));
    } catch (err) {
      sayError(err, "Loading the agent's tasks");
    }
  },

  /** Keep an open agent detail live: read the agent again. */
  async refresh(agentId) {
    try {
      const doc = await api(`${tenantPath()}/agents/${enc(agentId)}`);
      if (detail.showing("agent", agentId)) this.show(doc);
    } catch (err) {
      sayError(err, `Reading agent ${agentId}`);
    }
  },

  async act(a, op) {
    if (op === "terminate" && !window.confirm(`Terminate agent ${a.agent_id}? It cannot be resumed.`)) return;
    let body = op === "resume" ? undefined : {};
    if (op === "release") {
      const reason = window.prompt(`Why is agent ${a.agent_id} released from quarantine? (recorded)`);
      if (!reason || !reason.trim()) return;
      body = { reason: reason.trim() };
    }
    try {
      const doc = await api(`${tenantPath()}/agents/${enc(a.agent_id)}/${op}`, {
        method: "POST",
        body,
      });
      this.list.update(doc.agent_id, doc);
      say(`Agent ${doc.agent_id} is ${doc.status}.`, "ok");
    } catch (err) {
      sayError(err, `Could not ${op} agent ${a.agent_id}`);
    }
  },

  /** agent_status_update: change the row in place; a new agent reloads the first page. */
  onLive(data) {
    const id = data.agent_id;
    if (typeof id !== "string" || typeof data.status !== "string") return;
    if (state.view === "agents") {
      clearTimeout(this.liveTimer);
      this.liveTimer = setTimeout(() => this.loadLive(), 500);
    }
    if (detail.showing("agent", id)) this.refresh(id);
    // the table shows the store; the registry's own heartbeat news only feeds the live list
    if (data.metadata && data.metadata.source === "heartbeat") return;
    const matches = !this.status || data.status === this.status;
    if (this.list.rows.has(id)) {
      if (matches) this.list.update(id, { status: data.status });
      else this.list.soon();
    } else if (matches && this.list.offset === 0 && !this.capability) {
      this.list.soon();
    }
  },
};

// -- tasks ---------------------------------------------------------------------------------------------------
const RETRYABLE = new Set(["failed", "timed_out", "dead_lettered"]);
const PRIORITY_NAMES = { 1: "low", 3: "medium", 4: "high", 5: "urgent" };

const tasks = {
  status: "",
  list: null,

  setup() {
    fillSelect($("tasks-status"), state.config.task_statuses);
    fillSelect($("task-priority"), state.config.priorities);
    $("task-priority").value = "medium";
    $("tasks-filter").addEventListener("submit", (e) => {
      e.preventDefault();
      this.status = $("tasks-status").value;
      this.list.first();
      this.list.reload();
    });
    $("tasks-status").addEventListener("change", () => $("tasks-filter").requestSubmit());
    $("task-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.list = new Listing({
      table: "tasks-table",
      pager: "tasks-pager",
      noun: "tasks",
      key: (t) => t.task_id,
      load: async (offset, limit, cursor) => {
        const page = cursor ? { cursor } : { offset };
        const data = await api(`${tenantPath()}/tasks${query({ status: this.status, limit, ...page })}`);
        return { items: data.tasks, pagination: data.pagination, nextCursor: data.next_cursor };
      },
      row: (t) => this.row(t),
      empty: () => (this.status ? "No task has this status." : "No tasks yet: submit one above."),
    });
  },

  enter() {
    $("task-submit").hidden = !can("submit_task");
    this.list.reload({ quiet: this.list.rows.size > 0 });
  },

  actions(t) {
    const out = [];
    const terminal = state.config.task_terminal.includes(t.status);
    if (can("cancel_task") && !terminal) out.push(actionButton("Cancel", () => this.act(t, "cancel"), "danger"));
    if (can("retry_task") && RETRYABLE.has(t.status)) out.push(actionButton("Retry", () => this.act(t, "retry")));
    return out;
  },

  row(t) {
    const id = String(t.task_id);
    const tr = el("tr", { class: "row" },
      el("td", { class: "id", "data-label": "Task", title: id }, id.length > 13 ? `${id.slice(0, 8)}…` : id),
      cell("Capability", (t.required_capabilities || []).join(", ")),
      el("td", { class: "status", "data-label": "Status" }, badge(t.status)),
      el("td", { class: "num", "data-label": "Priority" }, PRIORITY_NAMES[t.priority] ?? t.priority),
      el("td", { class: "id", "data-label": "Agent" }, t.agent_id ?? "-"),
      el("td", { class: "num", "data-label": "Attempt" }, fmtNumber(t.attempt)),
      timeCell("Submitted", t.submitted_at),
      el("td", { "data-label": "Actions" }, el("div", { class: "actions" }, this.actions(t))),
    );
    clickable(tr, () => this.show(t));
    if (detail.showing("task", id)) this.show(t);
    return tr;
  },

  show(t) {
    detail.open("task", t.task_id, t.task_id, [
      ["Status", badge(t.status)],
      ["Type", t.task_type],
      ["Capabilities", (t.required_capabilities || []).join(", ")],
      ["Priority", PRIORITY_NAMES[t.priority] ?? t.priority],
      ["Agent", t.agent_id],
      ["Attempt", `${t.attempt} of ${t.max_attempts} (retries used ${t.retries_used})`],
      ["Timeout", `${t.timeout_seconds} s`],
      ["Submitted", fmtTime(t.submitted_at)],
      ["Started", t.started_at ? fmtTime(t.started_at) : "-"],
      ["Queued", fmtSeconds(t.queued_seconds)],
      ["Ran", fmtSeconds(t.run_seconds)],
      ["Completed", t.completed_at ? fmtTime(t.completed_at) : "-"],
      ["Payload", el("pre", { class: "json" }, JSON.stringify(t.payload ?? {}, null, 2))],
      t.error ? ["Error", t.error] : ["Result", el("pre", { class: "json" }, t.result == null ? "-" : JSON.stringify(t.result, null, 2))],
      ["Timeline", timeline(t.timeline)],
    ], t, this.actions(t));
  },

  /** Keep an open task detail live: read the task again (until the read model shows the
   *  pushed status: the push can come before the projection). */
  async refresh(taskId, status, tries = 10) {
    try {
      const doc = await api(`${tenantPath()}/tasks/${enc(taskId)}`);
      if (doc.status !== status && tries > 1) {
        setTimeout(() => this.refresh(taskId, status, tries - 1), 200);
        return;
      }
      if (this.list.rows.has(taskId)) this.list.update(taskId, doc);
      if (detail.showing("task", taskId)) this.show(doc);
    } catch (err) {
      sayError(err, `Reading task ${taskId}`);
    }
  },

  async act(t, op) {
    try {
      const doc = await api(`${tenantPath()}/tasks/${enc(t.task_id)}/${op}`, { method: "POST", body: op === "cancel" ? {} : undefined });
      this.list.update(doc.task_id, doc);
      say(`Task ${doc.task_id} is ${doc.status}.`, "ok");
    } catch (err) {
      sayError(err, `Could not ${op} task ${t.task_id}`);
    }
  },

  formError(text) {
    const line = $("task-form-error");
    line.textContent = text;
    line.hidden = !text;
  },

  /** Validate the form here (a clear message beats a 422), then POST the task. */
  async submit() {
    this.formError("");
    const capability = $("task-capability").value.trim();
    if (!/^[A-Za-z0-9_-]{1,100}$/.test(capability)) {
      this.formError("Capability: 1-100 letters, digits, '-' or '_'.");
      return;
    }
    let payload;
    try {
      payload = JSON.parse($("task-payload").value.trim() || "{}");
    } catch (err) {
      this.formError(`Payload is not valid JSON: ${err.message}`);
      return;
    }
    if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
      this.formError('Payload must be a JSON object, e.g. {"text": "hello"}.');
      return;
    }
    const button = $("task-form").querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const doc = await api(`${tenantPath()}/tasks`, {
        method: "POST",
        body: { capability, payload, priority: $("task-priority").value },
      });
      say(`Task ${doc.task_id} submitted for ${capability}.`, "ok");
      this.list.first();
      await this.list.reload({ quiet: true });
    } catch (err) {
      if (err instanceof ApiError && err.status !== 401) this.formError(`${err.message}${err.code ? ` (${err.code})` : ""}`);
      else sayError(err, "Submitting the task");
    } finally {
      button.disabled = false;
    }
  },

  /** task_update: change the row in place; an unseen task reloads the first page. */
  onLive(data) {
    const id = data.task_id;
    if (typeof id !== "string" || typeof data.status !== "string") return;
    if (detail.showing("task", id)) this.refresh(id, data.status);
    const matches = !this.status || data.status === this.status;
    if (this.list.rows.has(id)) {
      if (!matches) {
        this.list.soon();
        return;
      }
      const patch = { status: data.status };
      if (typeof data.agent_id === "string") patch.agent_id = data.agent_id;
      if (data.metadata && typeof data.metadata.attempt === "number") patch.attempt = data.metadata.attempt;
      this.list.update(id, patch);
    } else if (matches && this.list.offset === 0) {
      this.list.soon();
    }
  },
};

// -- audit -----------------------------------------------------------------------------------------------------
const audit = {
  list: null,

  setup() {
    fillSelect($("audit-action"), state.config.audit_actions);
    fillSelect($("audit-status"), state.config.audit_statuses);
    $("audit-filter").addEventListener("submit", (e) => {
      e.preventDefault();
      this.list.first();
      this.list.reload();
    });
    for (const id of ["audit-action", "audit-status"]) {
      $(id).addEventListener("change", () => $("audit-filter").requestSubmit());
    }
    this.list = new Listing({
      table: "audit-table",
      pager: "audit-pager",
      noun: "audit entries",
      key: (e) => e.entry_id,
      load: async (offset, limit) => {
        const q = query({ action: $("audit-action").value, status: $("audit-status").value, limit, offset });
        const data = await api(`${tenantPath()}/audit${q}`);
        return { items: data.entries, pagination: data.pagination };
      },
      row: (e) => this.row(e),
      empty: () => "No audit entries match.",
    });
  },

  enter() {
    this.list.reload({ quiet: this.list.rows.size > 0 });
  },

  row(e) {
    const resource = [e.resource_type, e.resource_id].filter(Boolean).join(" ");
    const tr = el("tr", { class: "row" },
      timeCell("Time", e.timestamp),
      cell("Action", e.action),
      el("td", { "data-label": "Status" }, badge(e.status)),
      cell("Actor", e.actor),
      cell("Resource", resource || "-"),
      el("td", { class: "id", "data-label": "Request", title: e.request_id || null }, (e.request_id || "-").slice(0, 12)),
    );
    clickable(tr, () => detail.open("audit", e.entry_id, e.action, [
      ["Time", fmtTime(e.timestamp)],
      ["Status", badge(e.status)],
      ["Actor", e.actor],
      ["Resource", resource || "-"],
      ["Client", e.client_ip],
      ["Request", e.request_id],
      ["Event position", e.event_position ?? "-"],
    ], e));
    return tr;
  },
};

// -- federated learning ------------------------------------------------------------------------------------------
/** An SVG element (in the namespace of the chart's own <svg>, so no URL is written here). */
function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS($("federated-chart").namespaceURI, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

const federated = {
  rounds: [],

  setup() {
    $("federated-refresh").addEventListener("click", () => this.enter());
    $("federated-job").addEventListener("change", () => this.render());
  },

  async enter() {
    try {
      const data = await api(`${tenantPath()}/federated/rounds`);
      this.rounds = data.rounds;
    } catch (err) {
      sayError(err, "Loading the federated rounds");
      return;
    }
    const select = $("federated-job");
    const jobs = [...new Set(this.rounds.map((r) => r.job))];
    const keep = jobs.includes(select.value) ? select.value : jobs[jobs.length - 1];
    select.replaceChildren(...jobs.map((j) => el("option", { value: j }, j)));
    if (keep) select.value = keep;
    this.render();
  },

  render() {
    const job = $("federated-job").value;
    const rows = this.rounds.filter((r) => r.job === job);
    const num = (v, digits) => (typeof v === "number" ? v.toFixed(digits) : "-");
    const body = $("federated-table").tBodies[0];
    body.replaceChildren(...(rows.length ? rows.map((r) => el("tr", { class: "row", "data-round": r.round },
      cell("Round", String(r.round)),
      el("td", { "data-label": "Status" }, badge(r.status === "committed" ? "completed" : "failed")),
      cell("Version", String(r.model_version)),
      cell("Participants", String(r.participants.length)),
      cell("Accuracy", num(r.accuracy, 4)),
      cell("Loss", num(r.loss, 4)),
      cell("Epsilon", num(r.epsilon, 3)),
      cell("Rejected", String(r.rejected)),
    )) : [el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No federated rounds in this tenant."))]));
    this.plot(rows.filter((r) => r.status === "committed" && typeof r.accuracy === "number"));
  },

  /** Accuracy (0-1) and loss (scaled to its maximum) against the round number. */
  plot(rows) {
    const chart = $("federated-chart");
    const [w, h, left, bottom, top] = [640, 240, 36, 24, 10];
    const maxRound = Math.max(1, ...rows.map((r) => r.round));
    const maxLoss = Math.max(1e-9, ...rows.map((r) => r.loss ?? 0));
    const x = (round) => left + (round / maxRound) * (w - left - 10);
    const y = (v) => top + (1 - v) * (h - top - bottom);
    const line = (value) => rows.map((r) => `${x(r.round).toFixed(1)},${y(value(r)).toFixed(1)}`).join(" ");
    chart.replaceChildren(
      svg("line", { class: "axis", x1: left, y1: y(0), x2: w - 10, y2: y(0) }),
      svg("line", { class: "axis", x1: left, y1: y(0), x2: left, y2: y(1) }),
      svg("text", { x: 4, y: y(1) + 4 }, "1.0"),
      svg("text", { x: 4, y: y(0) }, "0"),
      svg("text", { x: w - 60, y: h - 4 }, `round ${maxRound}`),
      svg("polyline", { class: "acc", points: line((r) => r.accuracy) }),
      svg("polyline", { class: "loss", points: line((r) => (r.loss ?? 0) / maxLoss) }),
    );
  },
};

// -- overview ----------------------------------------------------------------------------------------------------
function figures(target, rows) {
  $(target).replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

const overview = {
  tenantFigures: {},

  enter() {
    this.refresh();
    clearInterval(this.chartTimer);
    this.chartTimer = setInterval(() => {
      if (!$("view-overview").hidden) this.charts();
    }, 5000);
  },

  async charts() {
    try {
      drawHistory(await api(`${tenantPath()}/metrics/history`), $);
    } catch (err) {
      $("charts-note").textContent = `Charts unavailable: ${err.message || err}`;
    }
  },

  async refresh() {
    this.charts();
    $("tenant-figures-name").textContent = state.tenant;
    const [ready, metrics, agentPage, taskPage] = await Promise.allSettled([
      api("/health/ready", { auth: false, okStatuses: [503] }),
      api("/v1/metrics", { auth: false }),
      api(`${tenantPath()}/agents?limit=1`),
      api(`${tenantPath()}/tasks?limit=1`),
    ]);
    if (ready.status === "fulfilled" && ready.value) {
      const r = ready.value;
      const overall = $("ready-status");
      overall.textContent = r.status;
      overall.className = badge(r.status).className;
      figures("ready-components", Object.entries(r.components || {}).map(([name, c]) => {
        const bits = [badge(c.status)];
        if (typeof c.latency_ms === "number") bits.push(` ${c.latency_ms} ms`);
        return [name, el("span", { title: c.detail || null }, bits)];
      }));
    } else {
      figures("ready-components", [["control plane", "unreachable"]]);
    }
    if (metrics.status === "fulfilled" && metrics.value) {
      const m = metrics.value;
      figures("mesh-figures", [
        ["Agents", fmtNumber(m.agent_count)],
        ["Messages processed", fmtNumber(m.messages_processed)],
        ["Requests served", fmtNumber(m.performance_metrics?.requests_total)],
        ["Throughput", `${m.performance_metrics?.throughput ?? 0} req/s`],
        ["Uptime", fmtDuration(m.uptime)],
      ]);
    }
    const fig = {};
    if (agentPage.status === "fulfilled") fig.agent_count = agentPage.value.pagination.total;
    if (taskPage.status === "fulfilled") fig.tasks_total = taskPage.value.pagination.total;
    const failed = [agentPage, taskPage].find((p) => p.status === "rejected");
    if (failed) sayError(failed.reason, `Reading tenant ${state.tenant}`);
    this.showTenant(fig);
  },

  showTenant(fig) {
    Object.assign(this.tenantFigures, fig);
    const f = this.tenantFigures;
    const rows = [["Agents", fmtNumber(f.agent_count)], ["Tasks", fmtNumber(f.tasks_total)]];
    if (f.live_agents !== undefined) rows.splice(1, 0, ["Live agents", fmtNumber(f.live_agents)]);
    figures("tenant-figures", rows);
    $("tenant-figures-note").textContent = f.pushed_at ? `Live figures at ${fmtTime(f.pushed_at)}` : "";
  },

  /** metrics_update pushed every few seconds for the tenant. */
  onMetrics(data, timestamp) {
    if (data.tenant_id !== state.tenant) return;
    const { agent_count, live_agents, tasks_total } = data;
    this.showTenant({ agent_count, live_agents, tasks_total, pushed_at: timestamp });
  },
};

// -- live updates (one WebSocket) ------------------------------------------------------------------------------------
const live = {
  ws: null,
  attempt: 0,
  timer: 0,
  running: false,
  authed: false,
  subscribedTenant: null,

  set(mode, text) {
    const badgeEl = $("live");
    badgeEl.dataset.state = mode;
    $("live-text").textContent = text;
  },

  start() {
    this.stop();
    this.running = true;
    this.connect();
  },

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    this.authed = false;
    this.subscribedTenant = null;
    if (ws) ws.close(1000, "signed out");
    this.set("offline", "offline");
  },

  connect() {
    clearTimeout(this.timer);
    this.set("connecting", this.attempt ? "reconnecting…" : "connecting…");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    this.authed = false;
    this.subscribedTenant = null;
    ws.addEventListener("open", () => this.send({ type: "auth", data: { token: state.token } }, ws));
    ws.addEventListener("message", (event) => this.receive(event, ws));
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return; // replaced or stopped on purpose
      this.ws = null;
      this.authed = false;
      if (this.running) this.retry();
    });
  },

  /** Exponential backoff with jitter: 1 s, 2 s, 4 s ... at most 30 s. */
  retry() {
    const delay = Math.min(30000, 1000 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    this.set("reconnecting", `reconnecting in ${Math.ceil(delay / 1000)} s`);
    this.timer = setTimeout(() => this.connect(), delay);
  },

  /** Reconnect at once (the network came back). */
  now() {
    if (this.running && !this.ws) this.connect();
  },

  send(message, ws = this.ws) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  },

  channels() {
    return LIVE_CHANNELS.filter((channel) => can(`ws:${channel}`));
  },

  subscribe() {
    if (!this.ws || !this.authed || this.subscribedTenant === state.tenant) return;
    for (const channel of this.channels()) {
      if (this.subscribedTenant) this.send({ type: "unsubscribe", data: { channel, tenant_id: this.subscribedTenant } });
      this.send({ type: "subscribe", data: { channel, tenant_id: state.tenant } });
    }
    this.subscribedTenant = state.tenant;
  },

  receive(event, ws) {
    if (this.ws !== ws) return;
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return;
    }
    const data = msg && typeof msg.data === "object" && msg.data !== null ? msg.data : {};
    switch (msg && msg.type) {
      case "ping":
        this.send({ type: "pong", data: { message_id: msg.message_id } });
        break;
      case "auth_response":
        this.attempt = 0;
        this.authed = true;
        this.set("live", "live");
        this.subscribe();
        break;
      case "agent_status_update":
        agents.onLive(data);
        break;
      case "task_update":
        tasks.onLive(data);
        break;
      case "approval_update":
        approvals.onLive(data);
        break;
      case "metrics_update":
        overview.onMetrics(data, msg.timestamp);
        break;
      case "error":
        console.warn("live updates:", data.code, data.error);
        break;
      default:
        break;
    }
  },
};

// -- session ---------------------------------------------------------------------------------------------------------
function showSigninError(text) {
  const line = $("signin-error");
  line.textContent = text;
  line.hidden = !text;
}

function signIn(raw) {
  const token = String(raw).trim().replace(/^Bearer\s+/i, "").replace(/\s+/g, "");
  let claims;
  try {
    claims = decodeClaims(token);
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSigninError(`This is not a usable token: ${err.message}.`);
    return false;
  }
  state.token = token;
  state.claims = claims;
  sessionStorage.setItem(TOKEN_KEY, token);
  const stored = sessionStorage.getItem(TENANT_KEY);
  state.tenant = isPlatformAdmin() && stored ? stored : claims.tenant;
  showSigninError("");
  $("token-input").value = "";
  renderSession();
  clearTimeout(state.expiryTimer);
  if (typeof claims.exp === "number") {
    const ms = Math.min(claims.exp * 1000 - Date.now(), 2 ** 31 - 1);
    state.expiryTimer = setTimeout(() => signOut("The token expired: sign in again."), ms);
  }
  live.start();
  if (isPlatformAdmin()) loadTenants();
  route();
  return true;
}

function signOut(reason = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(TENANT_KEY);
  clearTimeout(state.expiryTimer);
  live.stop();
  detail.close();
  state.token = null;
  state.claims = null;
  state.tenant = null;
  for (const view of [agents, tasks, audit]) view.list.clear();
  overview.tenantFigures = {};
  $("message").hidden = true;
  $("session").hidden = true;
  $("nav").hidden = true;
  showSigninError(reason);
  history.replaceState(null, "", `${location.pathname}${location.search}`);
  route();
}

function renderSession() {
  const c = state.claims;
  $("whoami").replaceChildren(
    el("strong", { title: "subject" }, c.sub), " · ",
    el("span", { title: "tenant of the token" }, c.tenant), " · ",
    el("span", { title: "roles" }, c.roles.join(", ") || "no role"),
  );
  $("tenant-pick").hidden = !isPlatformAdmin();
  document.querySelector('#nav a[data-view="audit"]').hidden = !can("list_audit");
  $("session").hidden = false;
  $("nav").hidden = false;
}

async function loadTenants() {
  const select = $("tenant-select");
  select.replaceChildren(el("option", { value: state.claims.tenant }, `${state.claims.tenant} (platform)`));
  try {
    const data = await api("/v1/tenants?limit=1000");
    for (const t of data.tenants) {
      if (t.id !== state.claims.tenant) select.append(el("option", { value: t.id }, `${t.name} (${t.id})`));
    }
  } catch (err) {
    sayError(err, "Listing tenants");
  }
  if (![...select.options].some((o) => o.value === state.tenant)) {
    select.append(el("option", { value: state.tenant }, state.tenant));
  }
  select.value = state.tenant;
}

function pickTenant(tenant) {
  if (!tenant || tenant === state.tenant) return;
  state.tenant = tenant;
  sessionStorage.setItem(TENANT_KEY, tenant);
  detail.close();
  for (const view of [agents, tasks, audit]) view.list.clear();
  overview.tenantFigures = {};
  live.subscribe();
  route();
}

// -- approvals (approvals.js) -----------------------------------------------------------------------------------
const approvals = createApprovals({ $, el, api, say, sayError, tenantPath, enc, can, fmtTime, ApiError });

// -- routing -----------------------------------------------------------------------------------------------------------
const handlers = { overview, agents, tasks, approvals, audit, federated };

function route() {
  let name = "signin";
  if (state.token) {
    name = location.hash.replace(/^#\/?/, "") || "overview";
    if (!VIEWS.includes(name) || (name === "audit" && !can("list_audit"))) name = "overview";
  }
  for (const view of ["signin", ...VIEWS]) $(`view-${view}`).hidden = view !== name;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  state.view = name;
  document.title = name === "signin" ? "AgentMesh: sign in" : `AgentMesh: ${name}`;
  if (name !== "signin") handlers[name].enter();
}

/** `#token=...` in the address: take it once and remove it from the address bar. */
function takeFragmentToken() {
  const match = /^#token=([^&]+)/.exec(location.hash);
  if (!match) return null;
  history.replaceState(null, "", `${location.pathname}${location.search}#/overview`);
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return match[1];
  }
}

// -- start -------------------------------------------------------------------------------------------------------------
async function main() {
  const fromFragment = takeFragmentToken();
  if (fromFragment) sessionStorage.setItem(TOKEN_KEY, fromFragment); // survives a failed start
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("token-input").value);
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("message-close").addEventListener("click", () => { $("message").hidden = true; });
  $("detail-close").addEventListener("click", () => detail.close());
  $("overview-refresh").addEventListener("click", () => overview.refresh());
  $("tenant-select").addEventListener("change", (e) => pickTenant(e.target.value));
  window.addEventListener("hashchange", route);
  window.addEventListener("online", () => live.now());
  try {
    state.config = await api("config.json", { auth: false });
  } catch (err) {
    showSigninError(`The UI could not load its configuration: ${err.message}`);
    route();
    return;
  }
  agents.setup();
  tasks.setup();
  approvals.setup();
  audit.setup();
  federated.setup();
  const token = fromFragment ?? sessionStorage.getItem(TOKEN_KEY);
  if (!token || !signIn(token)) route();
}

main();
