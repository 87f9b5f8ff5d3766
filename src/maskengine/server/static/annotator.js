// The canvas annotator: prompts -> candidates from the server, brush/eraser, overlays of
// saved masks, undo. Coordinates are image pixels (the canvas has the image's size and is
// scaled by CSS). Masks are row-major Uint8Array(h * w) bitmaps.
import { area, decode, encode } from "./rle.js";

const PALETTE = [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
  [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]];
const WORK_COLOR = [30, 144, 255];
const DRAG_MIN = 5; // pixels on screen before a press becomes a box

function overlay(bits, w, h, [r, g, b], alpha) {
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(w, h);
  const d = img.data;
  for (let i = 0; i < bits.length; i++) {
    if (bits[i]) { const j = 4 * i; d[j] = r; d[j + 1] = g; d[j + 2] = b; d[j + 3] = alpha; }
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

/** The mask's boundary pixels (inside, with a 4-neighbour outside) as an opaque layer;
 * `dashed` leaves gaps (runs of 4 pixels on, 4 off along the diagonals): the look of a
 * pre-filled mask that waits for a person's decision. */
function outline(bits, w, h, [r, g, b], dashed = false) {
  const edge = new Uint8Array(bits.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (dashed && ((x + y) >> 2) % 2) continue;
      if (bits[i] && (x === 0 || y === 0 || x === w - 1 || y === h - 1
          || !bits[i - 1] || !bits[i + 1] || !bits[i - w] || !bits[i + w])) edge[i] = 1;
    }
  }
  return overlay(edge, w, h, [r, g, b], 255);
}

const PROPOSED_FILL = 90; // of 255: a pre-filled mask's fill is fainter than a saved one's

export function maskColor(index) {
  return PALETTE[index % PALETTE.length];
}

function fresh() {
  return { points: [], box: null, cands: [], sel: 0, bits: null, editing: null,
    events: [], t0: null, clicks: 0, edited: false, version: null,
    category: null, categoryChanged: false, region: null, candRegion: null };
}

export class Annotator {
  /** canvas: the <canvas>; hooks: {predict(body) -> Promise<response>, onChange()} */
  constructor(canvas, hooks) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.hooks = hooks;
    this.image = null;
    this.masks = [];
    this.cur = fresh();
    this.history = [];
    this.tool = "prompt";
    this.brush = 10;
    this.seq = 0;
    this.modelVersion = null; // the version serving now, as far as the page knows
    this.drag = null;
    this.workCanvas = null;
    this.viewScale = 1; // the zoom: point markers and box lines keep their size on screen
    this.opacity = 0.45; // of the saved masks' fill; their outlines are always opaque
    this.showMasks = true;
    this.hidden = new Set(); // ids of saved masks hidden one by one
    this.filter = () => true; // saved masks shown at all (the class filter)
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    canvas.addEventListener("mousedown", (e) => this.onDown(e));
    window.addEventListener("mousemove", (e) => this.onMove(e));
    window.addEventListener("mouseup", (e) => this.onUp(e));
  }

  // -- image and saved masks ------------------------------------------------------------
  setImage(image, bitmap) {
    this.image = { ...image, bitmap };
    this.canvas.width = image.width;
    this.canvas.height = image.height;
    this.seq++; // an answer for the previous image must not land on this one
    this.cur = fresh();
    this.history = [];
    this.workCanvas = null;
    this.workEdge = null;
    this.canvas.dataset.maskArea = "0";
    this.render();
    this.hooks.onChange();
  }

  setMasks(records) {
    const { width: w, height: h } = this.image;
    this.masks = records.map((m, i) => {
      const bits = decode(m.counts, h, w);
      const color = maskColor(i);
      const proposed = m.prefill_state === "proposed";
      return { ...m, bits, color, fill: overlay(bits, w, h, color, proposed ? PROPOSED_FILL : 255),
        edge: outline(bits, w, h, color, proposed) };
    });
    const ids = new Set(records.map((m) => m.id));
    for (const id of this.hidden) if (!ids.has(id)) this.hidden.delete(id);
    this.render();
  }

  visible(m) {
    return this.showMasks && !this.hidden.has(m.id) && this.filter(m);
  }

  maskAt(x, y) {
    const i = Math.round(y) * this.image.width + Math.round(x);
    for (let k = this.masks.length - 1; k >= 0; k--) {
      const m = this.masks[k];
      if (this.visible(m) && m.bits[i]) return m;
    }
    return null;
  }

  // -- the mask being made --------------------------------------------------------------
  snapshot() {
    const c = this.cur;
    this.history.push({ ...c, points: [...c.points], events: [...c.events],
      bits: c.bits && c.bits.slice() });
    if (this.history.length > 100) this.history.shift();
  }

  event(type, fields) {
    const now = performance.now();
    if (this.cur.t0 === null) this.cur.t0 = now;
    this.cur.events.push({ t: (now - this.cur.t0) / 1000, type, ...fields });
  }

  setWork(bits) {
    this.cur.bits = bits;
    const { width: w, height: h } = this.image;
    this.workCanvas = bits ? overlay(bits, w, h, WORK_COLOR, 150) : null;
    this.workEdge = bits && this.cur.editing ? outline(bits, w, h, [255, 255, 255]) : null;
    this.canvas.dataset.maskArea = bits ? String(area(bits)) : "0";
    this.render();
    this.hooks.onChange();
  }

  async predict() {
    const c = this.cur;
    if (!c.points.length && !c.box) { this.setWork(c.editing ? c.bits : null); return; }
    const prev = c.cands[c.sel];
    // Low-res logits are only meaningful to the model version that made them, in the frame
    // (the whole image or the same zoomed region) they were made in.
    const reuse = prev && !c.edited && c.version === this.modelVersion
      && JSON.stringify(c.candRegion) === JSON.stringify(c.region);
    const body = { points: c.points, box: c.box, multimask: true,
      mask_input: reuse ? prev.low_res : null, region: c.region };
    const seq = ++this.seq;
    let res = await this.hooks.predict(body);
    if (res && body.mask_input && res.model_version_id !== c.version && seq === this.seq) {
      // The server switched models after our last answer: ask again without the old logits.
      this.modelVersion = res.model_version_id;
      res = await this.hooks.predict({ ...body, mask_input: null });
    }
    if (seq !== this.seq || !res) return; // a newer prompt is on its way
    c.cands = res.candidates;
    c.version = res.model_version_id;
    c.candRegion = res.region ?? null;
    c.sel = 0;
    c.edited = false;
    this.setWork(decode(c.cands[0].counts, res.size[0], res.size[1]));
  }

  /** The crop the model is asked on for the mask being made: fixed at its first prompt
   * (what the zoomed-in screen shows then, hooks.region()), dropped when a prompt falls
   * outside it (then the whole image). */
  useRegion(xys) {
    const c = this.cur;
    if (!c.points.length && !c.box) c.region = this.hooks.region ? this.hooks.region() : null;
    const r = c.region;
    if (r && xys.some(([x, y]) => x < r[0] || x > r[2] || y < r[1] || y > r[3])) c.region = null;
  }

  addPoint(x, y, label) {
    this.useRegion([[x, y]]);
    this.snapshot();
    this.cur.points.push({ x, y, label });
    this.cur.clicks++;
    this.event("point", { x, y, label });
    return this.predict();
  }

  setBox(box) {
    this.useRegion([[box[0], box[1]], [box[2], box[3]]]);
    this.snapshot();
    this.cur.box = box;
    this.cur.clicks++;
    this.event("box", { box });
    return this.predict();
  }

  cycle() {
    const c = this.cur;
    if (c.cands.length < 2) return;
    this.snapshot();
    c.sel = (c.sel + 1) % c.cands.length;
    c.edited = false;
    this.event("cycle", { candidate: c.sel });
    this.setWork(decode(c.cands[c.sel].counts, this.image.height, this.image.width));
  }

  paint(x, y, value, first) {
    const { width: w, height: h } = this.image;
    if (first) {
      this.snapshot();
      this.cur.clicks++;
      this.event(value ? "brush" : "erase", { x, y, radius: this.brush });
    }
    const bits = this.cur.bits ? this.cur.bits : new Uint8Array(w * h);
    const r = this.brush, r2 = r * r;
    for (let yy = Math.max(0, Math.floor(y - r)); yy <= Math.min(h - 1, Math.ceil(y + r)); yy++) {
      for (let xx = Math.max(0, Math.floor(x - r)); xx <= Math.min(w - 1, Math.ceil(x + r)); xx++) {
        if ((xx - x) ** 2 + (yy - y) ** 2 <= r2) bits[yy * w + xx] = value;
      }
    }
    this.cur.edited = true;
    this.setWork(bits);
  }

  select(mask) {
    this.cur = fresh();
    this.history = [];
    this.cur.editing = mask;
    this.cur.category = mask.category_id ?? null;
    this.event("select", {});
    this.setWork(mask.bits.slice());
  }

  undo() {
    const prev = this.history.pop();
    if (!prev) return;
    this.seq++; // drop the answer of a prompt that is being undone
    this.cur = { ...prev, events: this.cur.events };
    this.event("undo", {});
    this.setWork(this.cur.bits);
  }

  clear() {
    this.seq++;
    this.cur = fresh();
    this.history = [];
    this.setWork(null);
  }

  /** Whether the mask being made would be lost: a new mask, or a saved one changed. */
  hasUnsaved() {
    const c = this.cur;
    return Boolean(c.bits && area(c.bits) && (!c.editing || c.clicks > 0 || c.categoryChanged));
  }

  /** The unsaved work as plain JSON (kept across a reload), or null. */
  draft() {
    if (!this.hasUnsaved()) return null;
    const c = this.cur;
    return { image_id: this.image.id, counts: encode(c.bits, this.image.height, this.image.width),
      points: c.points, box: c.box, clicks: c.clicks, events: c.events,
      seconds: c.t0 === null ? 0 : (performance.now() - c.t0) / 1000,
      category: c.category, categoryChanged: c.categoryChanged,
      editing: c.editing ? { id: c.editing.id, version: c.editing.version } : null };
  }

  /** Bring back a draft() of this image; false when it does not fit (its mask is gone or
   * was changed since). */
  restore(d) {
    let editing = null;
    if (d.editing) {
      editing = this.masks.find((m) => m.id === d.editing.id);
      if (!editing || editing.version !== d.editing.version) return false;
    }
    this.cur = { ...fresh(), points: d.points, box: d.box, clicks: d.clicks, events: d.events,
      editing, edited: true, t0: performance.now() - 1000 * d.seconds,
      category: d.category ?? null, categoryChanged: Boolean(d.categoryChanged) };
    this.history = [];
    this.setWork(decode(d.counts, this.image.height, this.image.width));
    return true;
  }

  /** What to save: {counts, score, editing, interaction} or null when there is no mask. */
  result() {
    const c = this.cur;
    if (!c.bits || !area(c.bits)) return null;
    const seconds = c.t0 === null ? 0 : (performance.now() - c.t0) / 1000;
    const cand = c.cands[c.sel];
    return {
      counts: encode(c.bits, this.image.height, this.image.width),
      score: cand && !c.edited ? cand.score : null,
      modelVersion: cand ? c.version : null, // the version that proposed it
      editing: c.editing,
      category: c.category,
      categoryChanged: c.categoryChanged,
      interaction: { events: c.events, n_clicks: c.clicks, seconds },
    };
  }

  // -- mouse ----------------------------------------------------------------------------
  toImage(e) {
    const r = this.canvas.getBoundingClientRect();
    const x = ((e.clientX - r.left) * this.canvas.width) / r.width;
    const y = ((e.clientY - r.top) * this.canvas.height) / r.height;
    return [Math.min(Math.max(x, 0), this.canvas.width), Math.min(Math.max(y, 0), this.canvas.height)];
  }

  onDown(e) {
    if (!this.image) return;
    e.preventDefault();
    const [x, y] = this.toImage(e);
    if (this.tool !== "prompt" && e.button === 0) {
      this.drag = { paint: true };
      this.paint(x, y, this.tool === "brush" ? 1 : 0, true);
      return;
    }
    this.drag = { x, y, sx: e.clientX, sy: e.clientY, button: e.button, shift: e.shiftKey };
  }

  onMove(e) {
    if (!this.drag || !this.image) return;
    const [x, y] = this.toImage(e);
    if (this.drag.paint) { this.paint(x, y, this.tool === "brush" ? 1 : 0, false); return; }
    const far = Math.hypot(e.clientX - this.drag.sx, e.clientY - this.drag.sy) >= DRAG_MIN;
    if (this.drag.button === 0 && far) { this.drag.to = [x, y]; this.render(); }
  }

  onUp(e) {
    const d = this.drag;
    this.drag = null;
    if (!d || !this.image || d.paint) return;
    const [x, y] = this.toImage(e);
    if (d.button === 0 && d.to) {
      const box = [Math.min(d.x, x), Math.min(d.y, y), Math.max(d.x, x), Math.max(d.y, y)];
      this.setBox(box.map((v) => Math.round(v * 10) / 10));
    } else if (d.button === 0 && d.shift) {
      const m = this.maskAt(x, y);
      if (m) this.select(m);
    } else if (d.button === 0 || d.button === 2) {
      this.addPoint(Math.round(d.x * 10) / 10, Math.round(d.y * 10) / 10, d.button === 0 ? 1 : 0);
    }
  }

  // -- drawing --------------------------------------------------------------------------
  render() {
    if (!this.image) return;
    const ctx = this.ctx;
    const { width: w, height: h } = this.image;
    ctx.clearRect(0, 0, w, h);
    ctx.drawImage(this.image.bitmap, 0, 0);
    const editing = this.cur.editing;
    ctx.globalAlpha = this.opacity;
    for (const m of this.masks) if (m !== editing && this.visible(m)) ctx.drawImage(m.fill, 0, 0);
    ctx.globalAlpha = 1;
    for (const m of this.masks) if (m !== editing && this.visible(m)) ctx.drawImage(m.edge, 0, 0);
    if (this.workCanvas) ctx.drawImage(this.workCanvas, 0, 0);
    if (editing && this.workEdge) ctx.drawImage(this.workEdge, 0, 0); // the selected one
    const s = Math.max(w, h) / 400 / this.viewScale;
    for (const p of this.cur.points) {
      ctx.beginPath();
      ctx.arc(p.x, p.y, 4 * s, 0, 2 * Math.PI);
      ctx.fillStyle = p.label ? "#2ecc40" : "#ff4136";
      ctx.fill();
      ctx.lineWidth = s;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
    ctx.lineWidth = 1.5 * s;
    ctx.strokeStyle = "#ffdc00";
    const b = this.cur.box;
    if (b) ctx.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
    if (this.drag && this.drag.to) {
      const [x, y] = this.drag.to;
      ctx.setLineDash([6 * s, 4 * s]);
      ctx.strokeRect(this.drag.x, this.drag.y, x - this.drag.x, y - this.drag.y);
      ctx.setLineDash([]);
    }
  }
}
