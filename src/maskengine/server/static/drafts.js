// The unsaved mask of the tab, kept in sessionStorage so that a reload does not lose it.
import { fresh } from "./annotator.js";
import { decode, encode } from "./rle.js";

const DRAFT_KEY = "maskengine-draft";

/** The annotator's unsaved work as plain JSON, or null: the mask as shown (screen-size
 * bitmap and where it lies) and what the server needs to make it (logits, strokes). */
function draftOf(ann) {
  if (!ann.hasUnsaved()) return null;
  const c = ann.cur;
  return { image_id: ann.image.id, counts: encode(c.bits, c.geo.h, c.geo.w), geo: c.geo,
    base: c.base, strokes: c.strokes,
    points: c.points, box: c.box, clicks: c.clicks, events: c.events,
    seconds: c.t0 === null ? 0 : (performance.now() - c.t0) / 1000,
    category: c.category, categoryChanged: c.categoryChanged,
    editing: c.editing ? { id: c.editing.id, version: c.editing.version } : null };
}

/** Bring back draft `d` of the annotator's image; false when it does not fit (its mask is
 * gone or was changed since, or it is a draft of an older page). */
function restoreInto(ann, d) {
  if (!d.geo) return false;
  let editing = null;
  if (d.editing) {
    editing = ann.masks.find((m) => m.id === d.editing.id);
    if (!editing || editing.version !== d.editing.version) return false;
  }
  ann.cur = { ...fresh(), points: d.points, box: d.box, clicks: d.clicks, events: d.events,
    editing, edited: true, t0: performance.now() - 1000 * d.seconds,
    category: d.category ?? null, categoryChanged: Boolean(d.categoryChanged),
    base: d.base ?? null, strokes: d.strokes ?? [] };
  ann.history = [];
  ann.setWork(decode(d.counts, d.geo.h, d.geo.w), d.geo);
  ann.refreshView();
  return true;
}

/** Store the annotator's unsaved work (or forget the draft when there is none). */
export function keepDraft(ann) {
  const d = draftOf(ann);
  if (d) sessionStorage.setItem(DRAFT_KEY, JSON.stringify(d));
  else sessionStorage.removeItem(DRAFT_KEY);
}

/** Bring back the draft of image `imageId` into `ann` (just opened on it): a message for
 * the person, or null when there was none. */
export function restoreDraft(ann, imageId) {
  const draft = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || "null");
  let message = null;
  if (draft && draft.image_id === imageId) {
    message = restoreInto(ann, draft)
      ? "restored the unsaved mask of this image: Enter saves it, Escape drops it"
      : "the unsaved mask of this image was dropped: its saved mask changed meanwhile";
  }
  if (!ann.hasUnsaved()) sessionStorage.removeItem(DRAFT_KEY);
  return message;
}
