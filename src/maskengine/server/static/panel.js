// A modal panel of the page (the image list, the rounds): a <dialog> that one key opens and
// closes; while it is open it takes every key (Escape closes it natively).
export class Panel {
  /** dialog: the <dialog>; key: the letter that toggles it; subclasses define refresh() */
  constructor(dialog, key) {
    this.dialog = dialog;
    this.key = key;
    this.sent = 0; // requests sent, and the number of the one whose answer was shown last
    this.shownSeq = 0;
  }

  /** The answer of request(), or null when the answer to a request sent after it was shown
   * already (a slow answer must not replace a newer one: a poll in flight, a quick filter
   * change). */
  async latest(request) {
    const seq = ++this.sent;
    const data = await request();
    if (seq < this.shownSeq) return null;
    this.shownSeq = seq;
    return data;
  }

  isOpen() { return this.dialog.open; }

  open() {
    if (!this.dialog.open) this.dialog.showModal();
    return this.refresh();
  }

  close() { this.dialog.close(); }

  /** True when the key was handled here (the toggle key, or any key while open). */
  onKey(e) {
    const plain = !(e.ctrlKey || e.metaKey || e.altKey);
    if (plain && e.key.toLowerCase() === this.key) {
      e.preventDefault();
      if (this.isOpen()) this.close(); else this.open();
      return true;
    }
    return this.isOpen();
  }
}
