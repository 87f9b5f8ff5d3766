// The review queue (reviewers and admins): masks waiting for review, those the last
// `maskengine check` scored as suspect first. Q starts and stops reviewing; the queue's
// first mask is opened and selected, so the usual tools edit it (Enter saves the edit);
// Y approves, N rejects, J skips to the next. The bar shows why a mask is suspect and how
// many of the project's masks are reviewed.
const $ = (sel) => document.querySelector(sel);

export class ReviewQueue {
  /** api: Api; hooks: {open(imageId) -> Promise, currentImage() -> id, select(maskId) ->
   * bool, maskVersion(maskId) -> version shown or null, status(text, error)} */
  constructor(api, hooks) {
    this.api = api;
    this.hooks = hooks;
    this.active = false;
    this.item = null;
    this.skipped = new Set();
    $("#review-open").addEventListener("click", () => this.toggle());
    $("#review-approve").addEventListener("click", () => this.decide("approved"));
    $("#review-reject").addEventListener("click", () => this.decide("rejected"));
    $("#review-skip").addEventListener("click", () => this.skip());
  }

  setRole(role) {
    this.allowed = role === "reviewer" || role === "admin";
    $("#review-open").hidden = !this.allowed;
  }

  toggle() { return this.active ? this.stop() : this.start(); }

  start() {
    if (!this.allowed) return;
    this.active = true;
    this.skipped.clear();
    $("#review-bar").hidden = false;
    $("#review-open").classList.add("active");
    return this.next();
  }

  stop() {
    this.active = false;
    this.item = null;
    $("#review-bar").hidden = true;
    $("#review-open").classList.remove("active");
  }

  /** Load the queue and open its first mask not skipped in this session. */
  async next() {
    let q;
    try {
      q = await this.api.get("/review/queue?limit=200");
    } catch (err) {
      return this.hooks.status(`could not load the review queue: ${err.message}`, true);
    }
    this.showProgress(q);
    this.item = q.items.find((i) => !this.skipped.has(i.mask_id)) || null;
    const bar = $("#review-bar");
    if (!this.item) {
      bar.dataset.mask = "";
      $("#review-item").textContent = q.pending ? "only skipped masks are left" : "nothing left to review";
      return;
    }
    const it = this.item;
    if (this.hooks.currentImage() !== it.image_id) await this.hooks.open(it.image_id);
    this.hooks.select(it.mask_id);
    const why = it.suspect
      ? `suspect, score ${it.score.toFixed(2)}${it.flags.length ? ": " + it.flags.join(", ") : ""}`
      : (it.score === null ? "pending (not checked)" : `pending, score ${it.score.toFixed(2)}`);
    $("#review-item").textContent = `mask #${it.mask_id} on image #${it.image_id} · ${why}`;
    bar.classList.toggle("suspect", it.suspect);
    bar.dataset.mask = String(it.mask_id); // what the bar shows (tests wait on it)
  }

  showProgress(q) {
    $("#review-progress").textContent = `${q.reviewed} of ${q.total} masks reviewed · ${q.pending} to go`;
    const meter = $("#review-meter");
    meter.max = Math.max(1, q.total);
    meter.value = q.reviewed;
  }

  async decide(state) {
    const it = this.item;
    if (!it) return;
    // The version on screen: after an edit saved here it is the edited mask's.
    const version = this.hooks.maskVersion(it.mask_id) ?? it.version;
    try {
      await this.api.post(`/masks/${it.mask_id}/review`, { state, version });
      this.hooks.status(`mask #${it.mask_id} ${state}`);
    } catch (err) {
      const why = err.status === 409 ? "it changed meanwhile; look again" : err.message;
      this.hooks.status(`review of mask #${it.mask_id} not saved: ${why}`, true);
    }
    await this.hooks.reload();
    return this.next();
  }

  skip() {
    if (!this.item) return;
    this.skipped.add(this.item.mask_id);
    return this.next();
  }

  /** Q toggles; while reviewing, Y / N / J decide. True when the key was taken. */
  onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || !this.allowed) return false;
    const k = e.key.toLowerCase();
    const act = { q: () => this.toggle() };
    if (this.active) {
      act.y = () => this.decide("approved");
      act.n = () => this.decide("rejected");
      act.j = () => this.skip();
    }
    if (!act[k]) return false;
    e.preventDefault();
    act[k]();
    return true;
  }
}
