// The unsaved mask of the tab, kept in sessionStorage so that a reload does not lose it.
const DRAFT_KEY = "maskengine-draft";

/** Store the annotator's unsaved work (or forget the draft when there is none). */
export function keepDraft(ann) {
  const d = ann.draft();
  if (d) sessionStorage.setItem(DRAFT_KEY, JSON.stringify(d));
  else sessionStorage.removeItem(DRAFT_KEY);
}

/** Bring back the draft of image `imageId` into `ann` (just opened on it): a message for
 * the person, or null when there was none. */
export function restoreDraft(ann, imageId) {
  const draft = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || "null");
  let message = null;
  if (draft && draft.image_id === imageId) {
    message = ann.restore(draft)
      ? "restored the unsaved mask of this image: Enter saves it, Escape drops it"
      : "the unsaved mask of this image was dropped: its saved mask changed meanwhile";
  }
  if (!ann.hasUnsaved()) sessionStorage.removeItem(DRAFT_KEY);
  return message;
}
