// The approvals view: pending approvals of the tenant, the full context of one (task, tool
// call, arguments, the agent's reasoning so far) and the decision (approve, approve with
// edited arguments, reject). Values from the API are rendered as text only. The decision
// sends the args_sha256 and call_id the approver saw, so a changed call is refused (409).

/** The view, built on the page's own helpers (passed in: one module owns the page state). */
export function createApprovals(h) {
  const { $, el, api, say, sayError, tenantPath, enc, can, fmtTime, ApiError } = h;

  const view = {
    items: new Map(),
    current: null, // the approval the panel shows
    selected: null, // the one asked for last (a row click, a live update), maybe loading
    loads: 0, // only the newest load fills the panel: answers can come back out of order
    timer: 0,

    setup() {
      $("approvals-refresh").addEventListener("click", () => this.enter());
      $("approval-approve").addEventListener("click", () => this.decide("approve"));
      $("approval-reject").addEventListener("click", () => this.decide("reject"));
    },

    async enter() {
      const tbody = $("approvals-table").querySelector("tbody");
      try {
        const doc = await api(`${tenantPath()}/approvals`);
        this.items = new Map(doc.items.map((a) => [a.approval_id, a]));
        if (!doc.items.length) {
          tbody.replaceChildren(el("tr", {}, el("td", { class: "placeholder", colspan: 6 }, "Nothing waits for a decision.")));
        } else {
          tbody.replaceChildren(...doc.items.map((a) => this.row(a)));
        }
        $("approvals-count").textContent = doc.total ? String(doc.total) : "";
        if (this.selected && !this.items.has(this.selected)) this.show(this.selected);
      } catch (err) {
        sayError(err, "Loading approvals");
      }
    },

    row(a) {
      const what = a.tool ? `tool ${a.tool}` : `task ${a.task.capability}`;
      const tr = el(
        "tr",
        { "data-id": a.approval_id, tabindex: "0" },
        el("td", {}, a.approval_id),
        el("td", {}, what),
        el("td", {}, a.reason),
        el("td", { class: "mono" }, JSON.stringify(a.arguments).slice(0, 80)),
        el("td", {}, a.deadline_at ? fmtTime(a.deadline_at) : "-"),
        el("td", {}, fmtTime(a.requested_at)),
      );
      tr.addEventListener("click", () => this.show(a.approval_id));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") this.show(a.approval_id); });
      return tr;
    },

    /** Show one approval; a reload of the one shown keeps what the approver typed. */
    async show(id) {
      const load = ++this.loads;
      this.selected = id;
      let a;
      try {
        a = await api(`${tenantPath()}/approvals/${enc(id)}`);
      } catch (err) {
        if (load === this.loads) sayError(err, `Loading approval ${id}`);
        return;
      }
      if (load !== this.loads) return;
      const prev = this.current;
      const same = prev !== null && prev.approval_id === a.approval_id && prev.args_sha256 === a.args_sha256;
      this.current = a;
      $("approval-panel").hidden = false;
      $("approval-title").textContent = `Approval ${a.approval_id}`;
      const fields = [
        ["Status", a.status],
        ["Kind", a.kind === "tool_call" ? "LLM tool call" : "task"],
        ["Task", `${a.task.task_id} (${a.task.capability}, priority ${a.task.priority}, ${a.task.status})`],
        ["Tool", a.tool || "-"],
        ["Call", a.call_id || "-"],
        ["Reason", a.reason],
        ["Requested by", `${a.requested_by} at ${fmtTime(a.requested_at)}`],
        ["Deadline", a.deadline_at ? `${fmtTime(a.deadline_at)} then ${a.on_timeout}` : "none"],
        ["Decides", a.required_role || "any approver"],
        ["Arguments sha256", a.args_sha256],
      ];
      if (a.decided_by) fields.push(["Decided", `${a.status} by ${a.decided_by}: ${a.comment || "-"}`]);
      $("approval-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
      $("approval-args").textContent = JSON.stringify(a.arguments, null, 2);
      $("approval-reasoning").textContent = a.reasoning || "(no reasoning: a task gate)";
      if (!same) {
        $("approval-edits").value = "";
        $("approval-comment").value = "";
        this.error("");
      }
      const open = a.status === "pending" && can("approve_task");
      $("approval-form").hidden = !open;
    },

    error(text) {
      const line = $("approval-error");
      line.textContent = text;
      line.hidden = !text;
    },

    async decide(action) {
      const a = this.current;
      if (!a) return;
      this.error("");
      const body = { comment: $("approval-comment").value.trim(), args_sha256: a.args_sha256 };
      if (a.call_id) body.call_id = a.call_id;
      const raw = $("approval-edits").value.trim();
      if (raw && action === "approve") {
        let edits;
        try {
          edits = JSON.parse(raw);
        } catch (err) {
          this.error(`Edited arguments are not valid JSON: ${err.message}`);
          return;
        }
        if (edits === null || typeof edits !== "object" || Array.isArray(edits)) {
          this.error("Edited arguments must be a JSON object.");
          return;
        }
        body.arguments = edits;
      }
      for (const b of [$("approval-approve"), $("approval-reject")]) b.disabled = true;
      try {
        const doc = await api(`${tenantPath()}/approvals/${enc(a.approval_id)}/${action}`, { method: "POST", body });
        say(`Approval ${doc.approval_id} ${doc.status}.`, "ok");
        await this.show(doc.approval_id);
        await this.enter();
      } catch (err) {
        if (err instanceof ApiError && err.status !== 401) this.error(`${err.message}${err.code ? ` (${err.code})` : ""}`);
        else sayError(err, "Deciding");
      } finally {
        for (const b of [$("approval-approve"), $("approval-reject")]) b.disabled = false;
      }
    },

    /** approval_update over /ws: reload the list shortly (bursts coalesce). */
    onLive(data) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        this.enter();
        if (this.selected === data.approval_id) this.show(data.approval_id);
      }, 200);
    },
  };
  return view;
}
