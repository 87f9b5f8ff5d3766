// The image list: every image of the project in queue order, a page at a time, filtered
// (all, to do, done, needs review; in projects with classes, also by the class of a mask),
// with its status and mask counts; a click or the jump box opens an image (through the
// page's own guard for unsaved work). L opens and closes it.
import { Panel } from "./panel.js";

const PAGE = 50;
const $ = (sel) => document.querySelector(sel);

export class ImageList extends Panel {
  /** api: Api; hooks: {open(id), current() -> id of the image on screen,
   *  categories() -> the project's classes [{id, name}]} */
  constructor(api, hooks) {
    super($("#images"), "l");
    this.api = api;
    this.hooks = hooks;
    this.filter = "all";
    this.category = ""; // "" or a category id: only images with a mask of that class
    this.offset = 0;
    this.total = 0;
    $("#images-open").addEventListener("click", () => this.open());
    $("#images-close").addEventListener("click", () => this.close());
    $("#image-filter").addEventListener("change", (e) => {
      this.filter = e.target.value;
      this.offset = 0;
      this.refresh();
    });
    $("#image-class").addEventListener("change", (e) => {
      this.category = e.target.value;
      this.offset = 0;
      this.refresh();
    });
    $("#images-prev").addEventListener("click", () => this.page(-1));
    $("#images-next").addEventListener("click", () => this.page(1));
    $("#image-jump").addEventListener("submit", (e) => {
      e.preventDefault();
      const id = Number($("#image-jump-id").value);
      if (Number.isInteger(id) && id > 0) this.pick(id);
    });
  }

  open() {
    this.fillClasses();
    return super.open();
  }

  /** The class filter's options: the project's classes (hidden in class-agnostic ones). */
  fillClasses() {
    const cats = this.hooks.categories();
    const select = $("#image-class");
    select.parentElement.hidden = cats.length === 0;
    select.replaceChildren(new Option("any class", ""));
    for (const c of cats) select.append(new Option(c.name, String(c.id)));
    if (!cats.some((c) => String(c.id) === this.category)) this.category = "";
    select.value = this.category;
  }

  page(direction) {
    const next = this.offset + direction * PAGE;
    if (next < 0 || next >= this.total) return;
    this.offset = next;
    this.refresh();
  }

  async refresh() {
    const filter = this.filter;
    const category = this.category;
    const query = `filter=${filter}${category ? `&category=${category}` : ""}`;
    let data;
    try {
      data = await this.latest(
        () => this.api.get(`/images?${query}&offset=${this.offset}&limit=${PAGE}`));
    } catch (err) {
      $("#images-range").textContent = `could not load the images: ${err.message}`;
      return;
    }
    if (!data) return; // the answer to a later request (another filter or page) is shown
    this.total = data.total;
    const body = $("#image-table tbody");
    body.replaceChildren();
    const current = this.hooks.current();
    for (const im of data.images) {
      const tr = document.createElement("tr");
      tr.dataset.id = im.id;
      tr.classList.toggle("current", im.id === current);
      const review = im.n_pending ? `${im.n_pending} to review` : "";
      for (const text of [`#${im.id}`, im.file_name, im.status === "todo" ? "to do" : "done",
        String(im.n_masks), review]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      tr.addEventListener("click", () => this.pick(im.id));
      body.append(tr);
    }
    const last = this.offset + data.images.length;
    $("#images-range").textContent = data.total
      ? `${this.offset + 1}–${last} of ${data.total}` : "no image matches";
    $("#images-prev").disabled = this.offset === 0;
    $("#images-next").disabled = last >= data.total;
    $("#image-table").dataset.filter = filter; // what the rows show (tests wait on it)
    $("#image-table").dataset.category = category;
  }

  pick(id) {
    this.close();
    this.hooks.open(id);
  }
}
