// Optional mask classes: the project's categories as buttons (keys 1-9 pick the first nine).
// The picked class is sticky: new masks get it when accepted; a saved mask being edited gets
// the class picked while it is selected (Enter saves the change). Class-agnostic projects
// (no categories) show nothing and ignore the keys.
const $ = (sel) => document.querySelector(sel);

export class ClassPicker {
  /** api: Api; onPick(category_id) after a pick */
  constructor(api, onPick) {
    this.api = api;
    this.onPick = onPick;
    this.list = [];
    this.current = null; // category id for the next new mask
    this.filter = null; // show only masks of this category (null: all)
    $("#class-filter").addEventListener("change", (e) => {
      this.filter = e.target.value === "" ? null : Number(e.target.value);
      this.onPick(null, true);
    });
  }

  async load() {
    this.list = await this.api.get("/categories");
    $("#classes").hidden = this.list.length === 0;
    const filter = $("#class-filter");
    filter.replaceChildren(new Option("all classes", ""));
    for (const c of this.list) filter.append(new Option(c.name, String(c.id)));
    if (this.current === null && this.list.length) this.current = this.list[0].id;
    this.render(null);
  }

  name(id) {
    const c = this.list.find((x) => x.id === id);
    return c ? c.name : null;
  }

  /** Key "1".."9": pick that class; false when it is not a class key of this project. */
  key(k) {
    const i = Number(k) - 1;
    if (!Number.isInteger(i) || i < 0 || i >= Math.min(9, this.list.length)) return false;
    this.current = this.list[i].id;
    this.onPick(this.current, false);
    return true;
  }

  /** Draw the buttons; `shown` is the class of the mask on screen (highlighted). */
  render(shown) {
    const box = $("#class-buttons");
    box.replaceChildren();
    this.list.forEach((c, i) => {
      const b = document.createElement("button");
      b.textContent = i < 9 ? `${i + 1} ${c.name}` : c.name;
      b.dataset.id = c.id;
      b.classList.toggle("active", c.id === (shown ?? this.current));
      b.addEventListener("click", () => {
        this.current = c.id;
        this.onPick(c.id, false);
      });
      box.append(b);
    });
  }

  /** Whether a mask passes the class filter of the mask list. */
  passes(mask) {
    return this.filter === null || mask.category_id === this.filter;
  }
}
