// COCO RLE in the browser. Counts are column-major run lengths starting with zeros;
// bitmaps here are row-major Uint8Array(h * w) of 0/1, like ImageData rows.

/** Compressed COCO counts string -> array of run lengths. */
export function countsFromString(s) {
  const cnts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = 1;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (cnts.length > 2) x += cnts[cnts.length - 2];
    cnts.push(x);
  }
  return cnts;
}

/** Array of run lengths -> compressed COCO counts string. */
export function countsToString(cnts) {
  let s = "";
  for (let i = 0; i < cnts.length; i++) {
    let x = cnts[i];
    if (i > 2) x -= cnts[i - 2];
    let more = 1;
    while (more) {
      let c = x & 0x1f;
      x >>= 5;
      more = (c & 0x10) ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

/** Compressed counts of an h x w mask -> row-major bitmap. */
export function decode(counts, h, w) {
  const bits = new Uint8Array(h * w);
  const cnts = countsFromString(counts);
  let idx = 0;
  for (let i = 0; i < cnts.length; i++) {
    const n = cnts[i];
    if (i % 2 === 1) {
      for (let j = idx; j < idx + n; j++) {
        const col = (j / h) | 0, row = j - col * h;
        bits[row * w + col] = 1;
      }
    }
    idx += n;
  }
  return bits;
}

/** Row-major bitmap of an h x w mask -> compressed counts. */
export function encode(bits, h, w) {
  const cnts = [];
  let cur = 0, run = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = bits[y * w + x] ? 1 : 0;
      if (v !== cur) { cnts.push(run); run = 0; cur = v; }
      run++;
    }
  }
  cnts.push(run);
  return countsToString(cnts);
}

/** Number of pixels set. */
export function area(bits) {
  let n = 0;
  for (let i = 0; i < bits.length; i++) n += bits[i];
  return n;
}
