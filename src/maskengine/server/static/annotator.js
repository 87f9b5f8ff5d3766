// The canvas annotator: prompts -> candidates from the server, brush/eraser, overlays of
// saved masks, undo. Coordinates are image pixels (the canvas has the image's size and is
// scaled by CSS). Masks are row-major Uint8Array(h * w) bitmaps with a geometry (see
// bitmaps.js): saved masks at full resolution, the mask being made at the screen's. The
// server makes the full-resolution mask at accept, from the candidate's logits and the
// strokes painted on it (`shape`), so a click costs the same on any picture.
import { dab, fullGeo, outline, overlay, pixelArea, sameDisplay, viewGeo } from "./bitmaps.js";
import { area, decode } from "./rle.js";

const PALETTE = [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
  [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]];
const WORK_COLOR = [30, 144, 255];
const DRAG_MIN = 5; // pixels on screen before a press becomes a box

const PROPOSED_FILL = 90; // of 255: a pre-filled mask's fill is fainter than a saved one's

export function maskColor(index) {
  return PALETTE[index % PALETTE.length];
}

/** The state of a mask being made, before anything is done. */
export function fresh() {
  // geo: where bits lie; base: the logits {low_res, region, version} the mask comes from
  // (null: painted from nothing, or the saved mask being edited); strokes: painted on it;
  // shown: the display ({size, view}) bits were drawn for; pred: the last answer's geo and
  // display (its candidates' counts are drawn for it).
  return { points: [], box: null, cands: [], sel: 0, bits: null, geo: null, editing: null,
    events: [], t0: null, clicks: 0, edited: false, version: null,
    category: null, categoryChanged: false, region: null, candRegion: null, imageSize: null,
    base: null, strokes: [], shown: null, pred: null };
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
    const { width: w, height: h } = this.image; // saved masks: full resolution
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
      bits: c.bits && c.bits.slice(),
      strokes: c.strokes.map((s) => ({ ...s, points: [...s.points] })) });
    if (this.history.length > 100) this.history.shift();
  }

  event(type, fields) {
    const now = performance.now();
    if (this.cur.t0 === null) this.cur.t0 = now;
    this.cur.events.push({ t: (now - this.cur.t0) / 1000, type, ...fields });
  }

  /** Show `bits` (lying at `geo`; default: where the current ones lie) as the mask being
   * made. */
  setWork(bits, geo = this.cur.geo) {
    const c = this.cur;
    c.bits = bits;
    c.geo = bits ? geo : null;
    this.workCanvas = bits ? overlay(bits, geo.w, geo.h, WORK_COLOR, 150) : null;
    this.workEdge = bits && c.editing ? outline(bits, geo.w, geo.h, [255, 255, 255]) : null;
    // In image pixels (estimated from the screen-size bitmap; exact at full resolution).
    this.canvas.dataset.maskArea = bits ? String(Math.round(area(bits) * pixelArea(geo))) : "0";
    this.canvas.dataset.maskGeo = bits ? [...geo.box, geo.h, geo.w].join(",") : "";
    this.render();
    this.hooks.onChange();
  }

  /** What the screen shows: {size, view} for predict and render. */
  display() {
    return this.hooks.display ? this.hooks.display()
      : { size: [this.image.width, this.image.height], view: fullGeo(this.image).box };
  }

  /** Show candidate i of the last answer (drawn for that answer's display). */
  showCandidate(i) {
    const c = this.cur;
    const cand = c.cands[i];
    c.sel = i;
    c.edited = false;
    c.base = { low_res: cand.low_res, region: c.candRegion, version: c.version };
    c.strokes = [];
    c.shown = c.pred.display;
    this.setWork(decode(cand.counts, c.pred.geo.h, c.pred.geo.w), c.pred.geo);
    this.refreshView();
  }

  /** After a zoom or a pan: draw the mask being made again for what the screen shows now
   * (the server samples the candidate's logits there; strokes are painted again on top).
   * A saved mask being edited is at full resolution already. */
  async refreshView() {
    const c = this.cur;
    if (!c.bits || (c.editing && !c.base)) return;
    const display = this.display();
    if (sameDisplay(display, c.shown)) return;
    const base = c.base;
    let geo, bits;
    if (base) {
      const res = await this.hooks.render({ low_res: base.low_res, region: base.region,
        model_version_id: base.version, display });
      // Dropped when the mask changed meanwhile (a new answer, another candidate, undo).
      if (!res || this.cur !== c || c.base !== base) return;
      geo = { box: res.mask_box, h: res.mask_size[0], w: res.mask_size[1] };
      bits = decode(res.counts, geo.h, geo.w);
    } else {
      geo = viewGeo(display);
      bits = new Uint8Array(geo.w * geo.h);
    }
    for (const s of c.strokes) for (const [x, y] of s.points) dab(bits, geo, x, y, s.radius, s.value);
    c.shown = display;
    this.setWork(bits, geo);
  }

  async predict() {
    const c = this.cur;
    if (!c.points.length && !c.box) { this.setWork(c.editing ? c.bits : null); return; }
    const prev = c.cands[c.sel];
    // Low-res logits are only meaningful to the model version that made them; they go back
    // with the frame they were made in (the whole image or a zoomed region), which the
    // server resamples them from when this prompt is asked on another frame.
    const reuse = prev && !c.edited && c.version === this.modelVersion && c.imageSize;
    const display = this.display();
    const body = { points: c.points, box: c.box, multimask: true,
      mask_input: reuse ? prev.low_res : null, region: c.region, display };
    if (reuse) body.mask_region = c.candRegion ?? [0, 0, c.imageSize[1], c.imageSize[0]];
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
    c.imageSize = res.size;
    // The server zoomed in on a small mask (the focus pass): ask on that crop from now on,
    // so the next prompt is answered there too (useRegion drops it for a prompt outside;
    // the logits made on it still go back, with mask_region).
    // Only a crop that holds every prompt so far (the focus pass frames the mask and its
    // positive clicks; a negative click may lie outside it).
    if (!c.region && c.candRegion && this.inside(c.candRegion)) c.region = c.candRegion;
    c.pred = { display, geo: { box: res.mask_box, h: res.mask_size[0], w: res.mask_size[1] } };
    this.showCandidate(0);
  }

  /** Whether every prompt of the mask being made (points, box corners) lies in `r`. */
  inside(r) {
    const c = this.cur;
    const xys = c.points.map((p) => [p.x, p.y]);
    if (c.box) xys.push([c.box[0], c.box[1]], [c.box[2], c.box[3]]);
    return xys.every(([x, y]) => x >= r[0] && x <= r[2] && y >= r[1] && y <= r[3]);
  }

  /** The crop the model is asked on for the mask being made: fixed at its first prompt
   * (what the zoomed-in screen shows then, hooks.region(), or the crop the server's focus
   * pass chose), dropped when a prompt falls outside it (then the whole image). */
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
    const next = (c.sel + 1) % c.cands.length;
    this.event("cycle", { candidate: next });
    this.showCandidate(next);
  }

  /** A brush (value 1) or eraser (0) dab at image (x, y): painted on the bitmap shown and
   * kept as a stroke point, which the server paints at full resolution at accept. */
  paint(x, y, value, first) {
    const c = this.cur;
    if (first) {
      this.snapshot();
      c.clicks++;
      this.event(value ? "brush" : "erase", { x, y, radius: this.brush });
      c.strokes.push({ value, radius: this.brush, points: [] });
    }
    if (!c.bits) { // painted from nothing: a bitmap of what the screen shows
      c.shown = this.display();
      c.geo = viewGeo(c.shown);
      c.bits = new Uint8Array(c.geo.w * c.geo.h);
    }
    const stroke = c.strokes[c.strokes.length - 1];
    stroke.points.push([Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
    dab(c.bits, c.geo, x, y, stroke.radius, value);
    c.edited = true;
    this.setWork(c.bits);
  }

  select(mask) {
    this.cur = fresh();
    this.history = [];
    this.cur.editing = mask;
    this.cur.category = mask.category_id ?? null;
    this.event("select", {});
    this.setWork(mask.bits.slice(), fullGeo(this.image));
  }

  undo() {
    const prev = this.history.pop();
    if (!prev) return;
    this.seq++; // drop the answer of a prompt that is being undone
    this.cur = { ...prev, events: this.cur.events };
    this.event("undo", {});
    this.setWork(this.cur.bits);
    this.refreshView();
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

  /** What to save: {shape, score, editing, interaction} or null when there is no mask.
   * `shape` is for the server to make the full-resolution mask: the candidate's logits
   * (none: the saved mask being edited, or nothing) and the strokes painted on them. */
  result() {
    const c = this.cur;
    if (!c.bits || !area(c.bits)) return null;
    const seconds = c.t0 === null ? 0 : (performance.now() - c.t0) / 1000;
    const cand = c.cands[c.sel];
    const b = c.base;
    return {
      shape: { low_res: b ? b.low_res : null, region: b ? b.region : null,
        model_version_id: b ? b.version : null, strokes: c.strokes },
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
    if (this.workCanvas) { // drawn over the image pixels it covers, one bitmap pixel a block
      const [x0, y0, x1, y1] = this.cur.geo.box;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(this.workCanvas, x0, y0, x1 - x0, y1 - y0);
      if (editing && this.workEdge) ctx.drawImage(this.workEdge, x0, y0, x1 - x0, y1 - y0);
      ctx.imageSmoothingEnabled = true;
    }
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
