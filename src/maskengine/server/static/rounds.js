// The "Rounds" panel: one row per model version (masks accepted while it served, effort per
// mask, validation figures), and for admins a button that trains the next round in the
// server. While a round runs the panel polls GET /api/rounds every 2 s.
const POLL_MS = 2000;

const $ = (sel) => document.querySelector(sel);

function fmt(v, digits) {
  return v === null || v === undefined ? "–" : v.toFixed(digits);
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

export class RoundsPanel {
  /** api: Api; hooks: {onServing(versionId)} called with the serving version on each update */
  constructor(api, hooks) {
    this.api = api;
    this.hooks = hooks;
    this.dialog = $("#rounds");
    this.timer = null;
    this.data = null;
    $("#rounds-open").addEventListener("click", () => this.open());
    $("#rounds-close").addEventListener("click", () => this.close());
    $("#round-form").addEventListener("submit", (e) => { e.preventDefault(); this.train(); });
  }

  setAdmin(isAdmin) {
    $("#round-form").hidden = !isAdmin;
  }

  isOpen() { return this.dialog.open; }

  open() {
    if (!this.dialog.open) this.dialog.showModal();
    return this.refresh();
  }

  close() { this.dialog.close(); }

  /** Keys while the page has focus: R toggles the panel; an open panel takes every key
   * (Escape closes it natively). True when the key was handled here. */
  onKey(e) {
    const plain = !(e.ctrlKey || e.metaKey || e.altKey);
    if (plain && e.key.toLowerCase() === "r") {
      e.preventDefault();
      if (this.isOpen()) this.close(); else this.open();
      return true;
    }
    return this.isOpen();
  }

  async refresh() {
    try {
      this.show(await this.api.get("/rounds"));
    } catch (err) {
      this.setState(`could not load the rounds: ${err.message}`, "error");
    }
  }

  async train() {
    const body = {};
    const steps = $("#round-steps").value.trim();
    const lr = $("#round-lr").value.trim();
    if (steps) body.steps = Number(steps);
    if (lr) body.lr = Number(lr);
    $("#round-train").disabled = true;
    try {
      this.show(await this.api.post("/rounds", body));
    } catch (err) {
      const what = err.status === 409 ? "" : "could not start the round: ";
      this.setState(what + err.message, "error");
      $("#round-train").disabled = false;
    }
  }

  setState(text, kind) {
    const el = $("#round-state");
    el.textContent = text;
    el.dataset.state = kind;
  }

  show(data) {
    this.data = data;
    const body = $("#round-table tbody");
    body.replaceChildren();
    for (const r of data.rows) {
      const tr = document.createElement("tr");
      tr.dataset.version = r.version_id;
      const state = r.serving ? "serving" : r.promoted ? "promoted" : "not promoted";
      tr.className = state.replace(" ", "-");
      tr.append(
        cell(String(r.round), "num"), cell(`${r.version_id} ${r.name}`),
        cell(String(r.masks), "num"), cell(fmt(r.seconds_per_mask, 1), "num"),
        cell(fmt(r.clicks_per_mask, 2), "num"), cell(fmt(r.masks_per_image, 1), "num"),
        cell(fmt(r.val_miou1, 3), "num"), cell(fmt(r.val_noc90, 2), "num"),
        cell(state), cell(r.note || "", "note"),
      );
      body.append(tr);
    }
    $("#round-steps").placeholder = String(data.defaults.steps);
    $("#round-lr").placeholder = String(data.defaults.lr);
    $("#round-train").disabled = data.running;
    $("#round-log").textContent = data.log.join("\n");
    if (data.running) {
      const since = new Date(data.started_at).toLocaleTimeString();
      this.setState(`a round is running (since ${since})…`, "running");
    } else if (data.error) {
      this.setState(`the last round failed: ${data.error}`, "error");
    } else if (data.last) {
      const l = data.last;
      this.setState(`round ${l.round} → version ${l.version_id}: ${l.note}`,
        l.promoted ? "promoted" : "kept");
    } else {
      this.setState("", "idle");
    }
    const serving = data.rows.find((r) => r.serving);
    if (serving) this.hooks.onServing(serving.version_id);
    clearTimeout(this.timer);
    this.timer = data.running ? setTimeout(() => this.refresh(), POLL_MS) : null;
  }
}
