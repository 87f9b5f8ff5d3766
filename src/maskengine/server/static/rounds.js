// The "Rounds" panel: one row per model version (masks accepted while it served, effort per
// mask, validation figures), and for admins a button that trains the next round in the
// server and one that cancels it. While a round runs the panel polls GET /api/rounds every
// 2 s and shows its phase and training progress (step, loss, IoU, speed, time left).
import { Panel } from "./panel.js";

const POLL_MS = 2000;
const PHASES = {
  starting: "preparing", training: "training", validating: "validating the new and the served model",
  registering: "registering the new version", detector: "retraining the detector (stage 2)",
  cancelling: "cancelling at the next step",
};

const $ = (sel) => document.querySelector(sel);

function fmt(v, digits) {
  return v === null || v === undefined ? "–" : v.toFixed(digits);
}

/** Seconds as "42 s", "3:05" or "1:02:09". */
function duration(s) {
  const t = Math.round(s);
  if (t < 60) return `${t} s`;
  const pad = (n) => String(n).padStart(2, "0");
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60);
  return h ? `${h}:${pad(m)}:${pad(t % 60)}` : `${m}:${pad(t % 60)}`;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

export class RoundsPanel extends Panel {
  /** api: Api; hooks: {onServing(versionId)} called with the serving version on each update */
  constructor(api, hooks) {
    super($("#rounds"), "r");
    this.api = api;
    this.hooks = hooks;
    this.timer = null;
    this.data = null;
    $("#rounds-open").addEventListener("click", () => this.open());
    $("#rounds-close").addEventListener("click", () => this.close());
    $("#round-form").addEventListener("submit", (e) => { e.preventDefault(); this.train(); });
    $("#round-cancel").addEventListener("click", () => this.cancel());
  }

  setAdmin(isAdmin) {
    $("#round-form").hidden = !isAdmin;
  }

  /** Show the answer of request() unless a later one was shown already (Panel.latest). */
  async fetchShow(request) {
    const data = await this.latest(request);
    if (data) this.show(data);
  }

  async refresh() {
    try {
      await this.fetchShow(() => this.api.get("/rounds"));
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
    if ($("#round-force").checked) body.force = true;
    $("#round-train").disabled = true;
    try {
      await this.fetchShow(() => this.api.post("/rounds", body));
    } catch (err) {
      const what = err.status === 409 ? "" : "could not start the round: ";
      this.setState(what + err.message, "error");
      $("#round-train").disabled = false;
    }
  }

  async cancel() {
    $("#round-cancel").disabled = true;
    try {
      await this.fetchShow(() => this.api.del("/rounds"));
    } catch (err) {
      if (err.status === 409) return this.refresh();  // it ended meanwhile: show how
      this.setState(`could not cancel the round: ${err.message}`, "error");
      $("#round-cancel").disabled = false;
    }
  }

  /** The progress line: the running round's training, or where a cancelled one stopped. */
  showProgress(data) {
    const p = data.progress;
    const box = $("#round-progress");
    box.hidden = !p || !(data.running || data.cancelled);
    if (box.hidden) return;
    $("#round-bar").value = p.step / p.steps;
    const parts = [`step ${p.step} of ${p.steps}`, `loss ${fmt(p.loss, 4)}`,
      `IoU ${fmt(p.iou, 3)}`, `${p.steps_per_s.toFixed(2)} steps/s`];
    if (data.phase === "training") parts.push(`ETA ${duration(p.eta_s)}`);
    $("#round-progress-text").textContent = parts.join(" · ");
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
        cell(fmt(r.train_seconds, 0), "num"),
        cell(state), cell(r.note || "", "note"),
        cell(r.det_ap50 === null || r.det_ap50 === undefined ? "–"
          : `${fmt(r.det_ap50, 3)} / ${fmt(r.det_recall, 3)}`, "num"),
      );
      body.append(tr);
    }
    $("#round-steps").placeholder = String(data.defaults.steps);
    $("#round-lr").placeholder = String(data.defaults.lr);
    $("#round-train").disabled = data.running;
    $("#round-cancel").hidden = !data.running;
    $("#round-cancel").disabled = data.phase === "cancelling";
    $("#round-log").textContent = data.log.join("\n");
    this.showProgress(data);
    if (data.running) {
      const since = new Date(data.started_at).toLocaleTimeString();
      const phase = PHASES[data.phase] || data.phase;
      this.setState(`a round is running (since ${since}): ${phase}…`,
        data.phase === "cancelling" ? "cancelling" : "running");
    } else if (data.cancelled) {
      const at = data.progress ? ` after step ${data.progress.step} of ${data.progress.steps}` : "";
      this.setState(`the round was cancelled${at}: nothing registered; the next round resumes `
        + "where this one stopped", "cancelled");
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
