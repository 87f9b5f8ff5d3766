// Zoom and pan of the canvas: the wheel zooms about the pointer, a drag with the middle button
// or with Space held pans, 0 fits the image again. The view is a CSS transform of the canvas,
// so the annotator's pointer-to-pixel mapping (getBoundingClientRect) stays right as it is.
const MIN = 1, MAX = 64, STEP = 1.25;

export class Zoom {
  /** stage: the element the canvas sits in (it clips); onChange(zoom) after each change */
  constructor(stage, canvas, onChange = () => {}) {
    this.stage = stage;
    this.canvas = canvas;
    this.onChange = onChange;
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.pan = null;
    this.space = false;
    canvas.style.transformOrigin = "0 0";
    stage.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    // Capture: a pan starts before the annotator sees the press (it must not become a click).
    stage.addEventListener("mousedown", (e) => this.onDown(e), true);
    window.addEventListener("mousemove", (e) => this.onMove(e));
    window.addEventListener("mouseup", () => { this.pan = null; this.setCursor(); });
    window.addEventListener("keydown", (e) => {
      if (e.key === " " && e.target.tagName !== "INPUT") {
        e.preventDefault();
        this.space = true;
        this.setCursor();
      }
    });
    window.addEventListener("keyup", (e) => {
      if (e.key === " ") { this.space = false; this.setCursor(); }
    });
  }

  setCursor() {
    this.stage.style.cursor = this.pan ? "grabbing" : this.space ? "grab" : "";
    this.canvas.style.cursor = this.pan || this.space ? "inherit" : "";
  }

  apply() {
    this.canvas.style.transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale})`;
    this.canvas.dataset.zoom = this.scale.toFixed(3);
    this.onChange(this.scale);
  }

  /** Back to the whole image, fitted. */
  reset() {
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.apply();
  }

  /** Zoom by `factor` keeping the client point (px, py) where it is. */
  zoomAt(px, py, factor) {
    const next = Math.min(MAX, Math.max(MIN, this.scale * factor));
    const r = this.canvas.getBoundingClientRect(); // left/top = layout position + translation
    this.tx += (px - r.left) * (1 - next / this.scale);
    this.ty += (py - r.top) * (1 - next / this.scale);
    this.scale = next;
    if (next === MIN) { this.tx = 0; this.ty = 0; }
    this.apply();
  }

  onWheel(e) {
    e.preventDefault();
    this.zoomAt(e.clientX, e.clientY, e.deltaY < 0 ? STEP : 1 / STEP);
  }

  onDown(e) {
    if (e.button !== 1 && !(e.button === 0 && this.space)) return;
    e.preventDefault();
    e.stopPropagation();
    this.pan = { x: e.clientX, y: e.clientY };
    this.setCursor();
  }

  onMove(e) {
    if (!this.pan) return;
    this.tx += e.clientX - this.pan.x;
    this.ty += e.clientY - this.pan.y;
    this.pan = { x: e.clientX, y: e.clientY };
    this.apply();
  }

  /** The part of the image on screen when zoomed in, for the model to look at closely
   * (null when the whole image is on screen). */
  zoomedRegion() {
    if (this.scale <= 1) return null;
    const r = this.visibleRegion();
    const whole = r[0] === 0 && r[1] === 0 && r[2] === this.canvas.width
      && r[3] === this.canvas.height;
    return whole || r[2] - r[0] < 8 || r[3] - r[1] < 8 ? null : r;
  }

  /** The part of the image on screen, in image pixels [x0, y0, x1, y1]. */
  visibleRegion() {
    const c = this.canvas.getBoundingClientRect();
    const s = this.stage.getBoundingClientRect();
    const kx = this.canvas.width / c.width, ky = this.canvas.height / c.height;
    const clamp = (v, hi) => Math.min(hi, Math.max(0, v));
    return [clamp((s.left - c.left) * kx, this.canvas.width),
      clamp((s.top - c.top) * ky, this.canvas.height),
      clamp((s.right - c.left) * kx, this.canvas.width),
      clamp((s.bottom - c.top) * ky, this.canvas.height)].map(Math.round);
  }
}
