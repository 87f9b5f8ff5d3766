// The page: token, image queue, saved-mask list, keyboard shortcuts; the canvas work is in
// annotator.js. No build step: plain ES modules.
import { Api, ApiError } from "./api.js";
import { Annotator } from "./annotator.js";
import { ClassPicker } from "./classes.js";
import { keepDraft, restoreDraft } from "./drafts.js";
import { ImageList } from "./images.js";
import { Zoom } from "./zoom.js";
import { markSelected, renderMaskList } from "./masklist.js";
import { Prefill, isProposed } from "./prefill.js";
import { RoundsPanel } from "./rounds.js";
import { ReviewQueue } from "./review.js";

const $ = (sel) => document.querySelector(sel);
const MODEL_POLL_MS = 15000; // a round started elsewhere (CLI) is noticed within this
const VIEW_REST_MS = 150; // after a zoom or pan step, before the mask is drawn for the view
const MAX_BRUSH = 4096; // image pixels (the server's limit on a stroke's radius)

const TOKEN_KEY = "maskengine-token";

/** The token to try: the address's (#token=...) first, else the saved one. A token is
 * saved only once the server takes it, so a wrong link cannot replace a good token. */
function readToken() {
  const m = /token=([^&]+)/.exec(location.hash);
  if (m) history.replaceState(null, "", location.pathname + location.search); // keep the token out of the address bar
  return { token: m ? decodeURIComponent(m[1]) : localStorage.getItem(TOKEN_KEY),
    fromLink: Boolean(m) };
}

class App {
  constructor(api) {
    this.api = api;
    this.image = null;
    this.model = null;
    this.canvas = $("#canvas");
    this.ann = new Annotator(this.canvas, {
      predict: (body) => this.predict(body),
      render: (body) => this.renderMask(body),
      display: () => this.display(),
      region: () => this.zoom.zoomedRegion(),
      onChange: () => this.onWorkChange(),
    });
    this.rounds = new RoundsPanel(api, {
      onServing: (id) => { if (this.model && id !== this.model.id) this.refreshModel(); },
    });
    this.zoom = new Zoom($("#stage"), this.canvas, (z) => {
      $("#zoom-level").textContent = z > 1 ? `${Math.round(z * 100)}%` : "";
      this.ann.viewScale = z;
      this.ann.render();
      // Once the view rests, the mask being made is drawn again for it.
      clearTimeout(this.viewTimer);
      this.viewTimer = setTimeout(() => this.ann.refreshView(), VIEW_REST_MS);
    });
    this.classes = new ClassPicker(api, (id, filterOnly) => this.onClass(id, filterOnly));
    this.ann.filter = (m) => this.classes.passes(m);
    this.images = new ImageList(api, {
      open: (id) => this.leave(`image ${id}`, () => this.goTo(id)),
      current: () => (this.image ? this.image.id : null),
      categories: () => this.classes.list,
    });
    this.review = new ReviewQueue(api, {
      open: (id) => this.leave(`image ${id}`, () => this.goTo(id)),
      currentImage: () => (this.image ? this.image.id : null),
      select: (id) => this.selectMask(id),
      maskVersion: (id) => (this.ann.masks.find((m) => m.id === id) || {}).version ?? null,
      status: (text, error) => this.status(text, error),
      reload: () => this.reloadMasks(),
    });
    this.prefill = new Prefill(api, {
      ann: this.ann,
      status: (text, error) => this.status(text, error),
      reload: () => (this.image ? this.reloadMasks() : null),
      conflict: (id, what) => this.conflict(id, what),
    });
    document.addEventListener("keydown", (e) => this.onKey(e));
    $("#next").addEventListener("click", () => this.step(false));
    $("#prev").addEventListener("click", () => this.step(true));
    $("#done").addEventListener("click", () => this.finishImage());
    $("#accept").addEventListener("click", () => this.accept());
    for (const t of ["prompt", "brush", "eraser"]) {
      $(`#tool-${t}`).addEventListener("click", () => this.setTool(t));
    }
    $("#opacity").addEventListener("input", (e) => {
      this.ann.opacity = Number(e.target.value) / 100;
      this.ann.render();
    });
    $("#show-masks").addEventListener("change", (e) => this.showMasks(e.target.checked));
  }

  showMasks(on) {
    this.ann.showMasks = on;
    $("#show-masks").checked = on;
    this.ann.render();
  }

  status(text, error = false) {
    const el = $("#status");
    el.textContent = text;
    el.classList.toggle("error", error);
  }

  async start(fromLink = false) {
    let note = "";
    try {
      let me;
      try {
        me = await this.api.get("/me");
      } catch (err) {
        const saved = localStorage.getItem(TOKEN_KEY);
        if (!(err instanceof ApiError && err.status === 401 && fromLink && saved
              && saved !== this.api.token)) throw err;
        this.api.token = saved; // the link's token was refused: keep to the saved one
        me = await this.api.get("/me");
        note = "the token in the link was refused; signed in with the saved token";
      }
      localStorage.setItem(TOKEN_KEY, this.api.token);
      this.setModel(await this.api.get("/model"));
      await this.classes.load();
      $("#user").textContent = `${me.name} (${me.role})`;
      this.rounds.setAdmin(me.role === "admin");
      this.prefill.setAdmin(me.role === "admin");
      this.review.setRole(me.role);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return showLogin("token refused");
      throw err;
    }
    $("#login").hidden = true;
    $("#main").hidden = false;
    clearInterval(this.modelTimer);
    this.modelTimer = setInterval(() => this.refreshModel(), MODEL_POLL_MS);
    const wanted = Number(new URLSearchParams(location.search).get("image"));
    try {
      await this.open(wanted || (await this.api.get("/images/next")).id);
      if (note) this.status(note, true);
    } catch (err) {
      this.status(err.status === 404 ? "no image left to annotate" : String(err), true);
    }
  }

  /** The mask being made changed: show it, keep it as the tab's draft, and a pending
   * "leave without saving?" question no longer applies. */
  onWorkChange() {
    this.showCandidates();
    this.classes.render(this.ann.cur.bits ? this.ann.cur.category : null);
    markSelected(this.ann);
    this.leaving = null;
    if (this.image && !this.restoring) keepDraft(this.ann);
  }

  /** Run `go` (moving to another image) unless that would drop an unsaved mask: then say
   * so, and go only when the same move is asked for again. */
  async leave(what, go) {
    if (this.ann.hasUnsaved() && this.leaving !== what) {
      this.leaving = what;
      this.status("this image has an unsaved mask: Enter saves it, Escape drops it; "
        + "do the same again to leave it unsaved", true);
      return;
    }
    this.leaving = null;
    await go();
  }

  setModel(model) {
    this.model = model;
    this.ann.modelVersion = model.id;
    const el = $("#model-name");
    el.textContent = `model ${model.name} (round ${model.round})`;
    el.dataset.version = String(model.id);
  }

  /** Ask which version serves now; a switch (a round was promoted) updates the label, and
   * the annotator stops feeding the old version's logits back. */
  async refreshModel() {
    let model;
    try {
      model = await this.api.get("/model");
    } catch (_) {
      return; // the next poll tries again
    }
    if (this.model && model.id === this.model.id) return;
    this.setModel(model);
    this.status(`now serving model ${model.name} (round ${model.round})`);
  }

  async open(id) {
    this.canvas.dataset.ready = "0";
    this.status("loading image…");
    const image = await this.api.get(`/images/${id}`); // also starts its embedding
    const [bitmap, masks] = await Promise.all([
      this.api.imageBitmap(id), this.api.get(`/images/${id}/masks`),
    ]);
    this.image = image;
    this.restoring = true; // the stored draft is this image's until it has been looked at
    this.ann.setImage(image, bitmap);
    this.zoom.reset();
    this.ann.setMasks(masks);
    this.renderList(masks);
    $("#image-name").textContent = `#${image.id} ${image.file_name} (${image.width}×${image.height}, ${image.split}, ${image.status})`;
    $("#image-pos").textContent = `${image.position} of ${image.total}`;
    history.replaceState(null, "", `?image=${id}`);
    const message = restoreDraft(this.ann, image.id) || "click an object";
    this.restoring = false;
    this.canvas.dataset.ready = "1";
    this.status(message);
  }

  /** Open image `id`, saying so when it cannot be (no such image). */
  async goTo(id) {
    try {
      await this.open(id);
    } catch (err) {
      this.canvas.dataset.ready = "1";
      this.status(err.status === 404 ? `there is no image #${id}` : String(err.message), true);
    }
  }

  async reloadMasks() {
    const masks = await this.api.get(`/images/${this.image.id}/masks`);
    this.ann.setMasks(masks);
    this.renderList(masks);
  }

  /** Select saved mask `id` of this image for editing; false when it is not here. */
  selectMask(id) {
    const m = this.ann.masks.find((x) => x.id === id);
    if (m) this.ann.select(m);
    return Boolean(m);
  }

  renderList(masks) {
    this.maskRecords = masks;
    renderMaskList(this.ann, masks, (id) => this.classes.name(id));
  }

  /** A class was picked (id), or the class filter changed (filterOnly). */
  onClass(id, filterOnly) {
    if (filterOnly) {
      this.ann.render();
      if (this.maskRecords) this.renderList(this.maskRecords);
      return;
    }
    const c = this.ann.cur;
    if (c.bits && c.category !== id) {
      c.category = id;
      c.categoryChanged = true;
      this.onWorkChange();
    } else {
      this.classes.render(c.bits ? c.category : null);
    }
    this.status(`class: ${this.classes.name(id)}${c.editing ? " (Enter saves it)" : ""}`);
  }

  async predict(body) {
    try {
      this.status("thinking…");
      const t = performance.now();
      const res = await this.api.post(`/images/${this.image.id}/predict`, body);
      if (res.model_version_id !== this.model.id) this.refreshModel();
      this.status(`${res.candidates.length} candidates in ${Math.round(performance.now() - t)} ms`);
      return res;
    } catch (err) {
      this.status(`prediction failed: ${err.message}`, true);
      return null;
    }
  }

  /** What the screen shows: the image pixels in view and the screen pixels they take
   * (predict answers at that resolution, whatever the picture's size). */
  display() {
    const { width: w, height: h } = this.canvas;
    let view = this.zoom.visibleRegion();
    if (view[2] - view[0] < 1 || view[3] - view[1] < 1) view = [0, 0, w, h]; // panned off
    const k = (this.canvas.getBoundingClientRect().width / w) * (window.devicePixelRatio || 1);
    const side = (n) => Math.min(16384, Math.max(1, Math.round(n * k)));
    return { size: [side(view[2] - view[0]), side(view[3] - view[1])], view };
  }

  /** The current candidate drawn again for a new view (null on failure: it stays). */
  async renderMask(body) {
    try {
      return await this.api.post(`/images/${this.image.id}/render`, body);
    } catch (err) {
      this.status(`drawing the mask failed: ${err.message}`, true);
      return null;
    }
  }

  showCandidates() {
    const c = this.ann.cur;
    const el = $("#candidates");
    if (c.editing) el.textContent = `editing mask #${c.editing.id}`;
    else if (!c.cands.length) el.textContent = c.bits ? "painted mask" : "no mask";
    else {
      const edited = c.edited ? " (edited)" : "";
      el.textContent = `candidate ${c.sel + 1}/${c.cands.length} · IoU ${c.cands[c.sel].score.toFixed(3)}${edited}`;
    }
  }

  async accept() {
    if (this.saving) return; // Enter pressed twice while the first save is on its way
    const r = this.ann.result();
    if (!r) return this.status("nothing to accept", true);
    if (isProposed(r.editing)) {
      // A pre-filled mask: saved unchanged it is confirmed, changed it is edited.
      const changed = r.interaction.n_clicks > 0;
      return this.prefill.decide(changed ? "edit" : "confirm", changed ? r : null);
    }
    this.saving = true;
    try {
      if (r.editing) {
        await this.api.put(`/masks/${r.editing.id}`, {
          version: r.editing.version, shape: r.shape, interaction: r.interaction,
          ...(r.categoryChanged ? { category_id: r.category } : {}),
        });
      } else {
        await this.api.post(`/images/${this.image.id}/masks`, {
          shape: r.shape, source: "manual", model_version_id: r.modelVersion ?? this.model.id,
          predicted_iou: r.score, interaction: r.interaction,
          category_id: r.category ?? (this.classes.list.length ? this.classes.current : null),
        });
      }
      this.status(`saved (${r.interaction.n_clicks} clicks, ${r.interaction.seconds.toFixed(1)} s)`);
      this.ann.clear();
    } catch (err) {
      this.saving = false;
      if (err.status === 409 && r.editing) return this.conflict(r.editing.id, "your change");
      this.status(`save failed: ${err.message}`, true);
    } finally {
      this.saving = false;
    }
    await this.reloadMasks();
  }

  /** Someone else changed or deleted mask `id` first: load its current version by itself
   * (the rest of the work stays as it is) and say what happened. */
  async conflict(id, what) {
    let current = null;
    try {
      current = await this.api.get(`/masks/${id}`);
    } catch (err) {
      if (err.status !== 404) return this.status(`conflict, and reloading failed: ${err.message}`, true);
    }
    await this.reloadMasks();
    if (!current || current.deleted) {
      this.ann.clear();
      return this.status(`mask #${id} was deleted by someone else; ${what} was not saved`, true);
    }
    const fresh = this.ann.masks.find((m) => m.id === id);
    if (fresh) this.ann.select(fresh);
    this.status(`mask #${id} was changed by someone else (now version ${current.version}); `
      + `${what} was not saved: its current version is loaded`, true);
  }

  async deleteSelected() {
    const m = this.ann.cur.editing;
    if (!m) return;
    if (isProposed(m)) return this.prefill.decide("reject");
    try {
      await this.api.del(`/masks/${m.id}?version=${m.version}`);
      this.status(`deleted mask #${m.id}`);
    } catch (err) {
      if (err.status === 409) return this.conflict(m.id, "the deletion");
      this.status(`delete failed: ${err.message}`, true);
    }
    this.ann.clear();
    await this.reloadMasks();
  }

  step(backwards) {
    if (!this.image) return;
    return this.leave(backwards ? "prev" : "next", () => this.stepNow(backwards));
  }

  async stepNow(backwards) {
    try {
      const q = `?after=${this.image.id}&backwards=${backwards}&todo_only=false`;
      const im = await this.api.get(`/images/next${q}`);
      await this.open(im.id);
    } catch (err) {
      this.status(String(err.message), true);
    }
  }

  finishImage() {
    return this.leave("done", () => this.finishNow());
  }

  async finishNow() {
    await this.api.put(`/images/${this.image.id}/status`, { status: "done" });
    try {
      const im = await this.api.get(`/images/next?after=${this.image.id}`);
      await this.open(im.id);
    } catch (err) {
      this.status(err.status === 404 ? "all images done" : err.message, err.status !== 404);
    }
  }

  setTool(tool) {
    this.ann.tool = tool;
    for (const t of ["prompt", "brush", "eraser"]) {
      $(`#tool-${t}`).classList.toggle("active", t === tool);
    }
    this.canvas.dataset.tool = tool;
  }

  onKey(e) {
    if (e.target.tagName === "INPUT" || $("#main").hidden) return;
    if (this.rounds.onKey(e)) return; // R, and every key while the panel is open
    if (this.images.onKey(e)) return; // L, and every key while the list is open
    if (this.review.onKey(e)) return; // Q, and Y / N / J while reviewing
    if (!this.image) return;
    const k = e.key;
    const act = {
      Enter: () => this.accept(),
      Escape: () => this.ann.clear(),
      Tab: () => this.ann.cycle(),
      Delete: () => this.deleteSelected(),
      ArrowRight: () => this.step(false),
      ArrowLeft: () => this.step(true),
      d: () => this.step(false),
      a: () => this.step(true),
      f: () => this.finishImage(),
      h: () => this.showMasks(!this.ann.showMasks),
      p: () => this.prefill.next(),
      c: () => this.prefill.decide("confirm"),
      x: () => this.prefill.decide("reject"),
      0: () => this.zoom.reset(),
      v: () => this.setTool("prompt"),
      b: () => this.setTool("brush"),
      e: () => this.setTool("eraser"),
      "[": () => { this.ann.brush = Math.max(1, this.ann.brush - 2); },
      "]": () => { this.ann.brush = Math.min(MAX_BRUSH, this.ann.brush + 2); },
    };
    if ((e.ctrlKey || e.metaKey) && k.toLowerCase() === "z") {
      e.preventDefault();
      this.ann.undo();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (this.classes.key(k)) { e.preventDefault(); return; }
    const f = act[k] || act[k.toLowerCase()];
    if (f) { e.preventDefault(); f(); }
  }
}

function showLogin(message) {
  $("#main").hidden = true;
  $("#login").hidden = false;
  $("#auth-error").textContent = message || "";
}

const first = readToken();
const app = new App(new Api(first.token));
$("#login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  app.api.token = $("#token").value.trim();
  app.start();
});
if (app.api.token) app.start(first.fromLink);
else showLogin("");
