// Stage 2 in the page: pre-filled masks (proposals of the detector + model) wait for a
// person. P selects the next one on the image; C confirms it as it is, X rejects it; an
// edit (brush, eraser, new prompts) saved with Enter is the "edit" decision. Each decision
// is sent with the seconds since the mask was selected. Admins get a "Pre-fill" button
// that pre-fills the images not done yet (in the server; progress is polled).
const $ = (sel) => document.querySelector(sel);
const POLL_MS = 2000;

export function isProposed(m) {
  return Boolean(m) && m.prefill_state === "proposed";
}

export class Prefill {
  /** api: Api; hooks: {ann: Annotator, status(text, error), reload() -> Promise,
   * conflict(id, what) -> Promise} */
  constructor(api, hooks) {
    this.api = api;
    this.hooks = hooks;
    this.timer = null;
    this.sending = false;
    $("#prefill-run").addEventListener("click", () => this.run());
  }

  setAdmin(isAdmin) {
    $("#prefill-run").hidden = !isAdmin;
    if (isAdmin) this.refresh();
  }

  /** The proposed masks of the image, in list order. */
  proposed() {
    return this.hooks.ann.masks.filter((m) => isProposed(m) && this.hooks.ann.visible(m));
  }

  /** Select the next proposed mask after the selected one (wrapping); false if none. */
  next() {
    const all = this.proposed();
    if (!all.length) { this.hooks.status("no pre-filled mask waits on this image"); return false; }
    const cur = this.hooks.ann.cur.editing;
    const at = all.findIndex((m) => cur && m.id === cur.id);
    this.hooks.ann.select(all[(at + 1) % all.length]);
    this.hooks.status(`pre-filled mask #${this.hooks.ann.cur.editing.id}: C confirms, X rejects, `
      + "edit it and Enter saves the edit");
    return true;
  }

  /** The selected mask when it is a proposal, else null (and says so). */
  selected() {
    const m = this.hooks.ann.cur.editing;
    if (isProposed(m)) return m;
    this.hooks.status("select a pre-filled mask first (P)", true);
    return null;
  }

  /** Send `decision` ("confirm", "edit", "reject") on the selected proposal; `r` is the
   * annotator's result() for an edit. */
  async decide(decision, r = null) {
    const m = r ? r.editing : this.selected();
    if (!m || this.sending) return;
    const c = this.hooks.ann.cur;
    const seconds = c.t0 === null ? 0 : (performance.now() - c.t0) / 1000;
    const body = { decision, version: m.version,
      interaction: r ? r.interaction : { events: [], n_clicks: 1, seconds } };
    if (decision === "edit") body.shape = r.shape; // the server makes the full-res mask
    this.sending = true;
    let said = null;
    try {
      await this.api.post(`/masks/${m.id}/prefill`, body);
      const done = { confirm: "confirmed", edit: "edited", reject: "rejected" }[decision];
      said = `pre-filled mask #${m.id} ${done} (${body.interaction.seconds.toFixed(1)} s)`;
      this.hooks.ann.clear();
    } catch (err) {
      this.sending = false;
      if (err.status === 409) return this.hooks.conflict(m.id, `the ${decision}`);
      return this.hooks.status(`${decision} failed: ${err.message}`, true);
    }
    await this.hooks.reload();
    this.sending = false;
    // Said once the list shows the decision; then on to the next proposal.
    if (decision !== "edit" && this.proposed().length) this.next();
    this.hooks.status(said);
  }

  async refresh() {
    let data;
    try {
      data = await this.api.get("/prefill");
    } catch (err) {
      return this.show({ error: `could not load the pre-fill state: ${err.message}` });
    }
    this.show(data);
  }

  async run() {
    $("#prefill-run").disabled = true;
    try {
      this.show(await this.api.post("/prefill", {}));
    } catch (err) {
      $("#prefill-run").disabled = false;
      this.show({ error: err.status === 409 ? err.message : `could not pre-fill: ${err.message}` });
    }
  }

  show(data) {
    const el = $("#prefill-state");
    const wasRunning = el.dataset.state === "running";
    let text = "", state = "idle";
    if (data.running) {
      state = "running";
      text = data.phase === "detector" ? "training the detector…"
        : `pre-filling ${data.done}/${data.total || "?"}…`;
    } else if (data.error) {
      state = "error";
      text = `pre-fill: ${data.error}`;
    } else if (data.last) {
      state = "done";
      text = `pre-filled ${data.last.images} images: ${data.last.proposed} masks proposed`;
    }
    el.textContent = text;
    el.dataset.state = state;
    $("#prefill-run").disabled = Boolean(data.running);
    clearTimeout(this.timer);
    this.timer = data.running ? setTimeout(() => this.refresh(), POLL_MS) : null;
    if (wasRunning && !data.running) this.hooks.reload();
  }
}
