// Mask bitmaps and where they lie on the image. A bitmap is a row-major Uint8Array(h * w)
// of 0/1; its geometry `geo` = {box: [x0, y0, x1, y1] image pixels it covers, w, h}. Saved
// masks cover the whole image at full resolution; the mask being made covers what the
// screen shows at the screen's resolution (the server draws it so: predict's `display`).

/** A bitmap as a canvas of its own size, coloured [r, g, b] where set. */
export function overlay(bits, w, h, [r, g, b], alpha) {
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
export function outline(bits, w, h, [r, g, b], dashed = false) {
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

/** The whole image at full resolution. */
export function fullGeo(image) {
  return { box: [0, 0, image.width, image.height], w: image.width, h: image.height };
}

/** The geometry the server gives a mask for `display` ({size, view}) over the whole
 * image: the view at the screen's resolution, never finer than the image. */
export function viewGeo(display) {
  const [x0, y0, x1, y1] = display.view;
  const s = Math.min(1, display.size[0] / (x1 - x0), display.size[1] / (y1 - y0));
  const box = [Math.floor(x0), Math.floor(y0), Math.ceil(x1), Math.ceil(y1)];
  return { box, w: Math.max(1, Math.round((box[2] - box[0]) * s)),
    h: Math.max(1, Math.round((box[3] - box[1]) * s)) };
}

/** Image pixels a bitmap pixel stands for. */
export function pixelArea(geo) {
  const [x0, y0, x1, y1] = geo.box;
  return ((x1 - x0) / geo.w) * ((y1 - y0) / geo.h);
}

/** Set to `value` the bitmap pixels whose image pixel (the one under their centre) lies in
 * the disc of radius r around image point (x, y): the server's rule for strokes, seen at
 * the bitmap's resolution. */
export function dab(bits, geo, x, y, r, value) {
  const [x0, y0, x1, y1] = geo.box;
  const sx = geo.w / (x1 - x0), sy = geo.h / (y1 - y0);
  const j0 = Math.max(0, Math.floor((x - r - x0) * sx) - 1);
  const j1 = Math.min(geo.w - 1, Math.ceil((x + r - x0) * sx) + 1);
  const i0 = Math.max(0, Math.floor((y - r - y0) * sy) - 1);
  const i1 = Math.min(geo.h - 1, Math.ceil((y + r - y0) * sy) + 1);
  const r2 = r * r;
  for (let i = i0; i <= i1; i++) {
    const py = Math.floor(y0 + (i + 0.5) / sy);
    for (let j = j0; j <= j1; j++) {
      const px = Math.floor(x0 + (j + 0.5) / sx);
      if ((px - x) ** 2 + (py - y) ** 2 <= r2) bits[i * geo.w + j] = value;
    }
  }
}

/** Whether two display requests ({size, view}) ask for the same drawing. */
export function sameDisplay(a, b) {
  return Boolean(a && b) && JSON.stringify(a) === JSON.stringify(b);
}
