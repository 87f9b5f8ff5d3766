// The saved-mask list beside the canvas: a colour swatch per mask (its colour on the
// canvas), its figures, a button to hide or show it, the one being edited highlighted.
import { maskColor } from "./annotator.js";

const $ = (sel) => document.querySelector(sel);

/** Fill #mask-list with `masks` (the records shown by `ann`) that pass its class filter;
 * className(id) names a mask's class (null: none). A click selects one. */
export function renderMaskList(ann, masks, className = () => null) {
  const list = $("#mask-list");
  list.replaceChildren();
  masks.forEach((m, i) => {
    if (!ann.filter(m)) return;
    const li = document.createElement("li");
    li.dataset.id = m.id;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${maskColor(i).join(",")})`;
    const eye = document.createElement("button");
    eye.className = "eye";
    eye.title = "show / hide this mask";
    const showEye = () => { eye.textContent = ann.hidden.has(m.id) ? "○" : "◉"; };
    showEye();
    eye.addEventListener("click", (e) => {
      e.stopPropagation();
      if (ann.hidden.has(m.id)) ann.hidden.delete(m.id); else ann.hidden.add(m.id);
      li.classList.toggle("hidden-mask", ann.hidden.has(m.id));
      showEye();
      ann.render();
    });
    const label = document.createElement("span");
    const iou = m.predicted_iou === null ? "" : ` · IoU ${m.predicted_iou.toFixed(2)}`;
    const cls = className(m.category_id);
    const stab = m.stability_score == null ? "" : ` · stab ${m.stability_score.toFixed(2)}`;
    label.textContent = `#${m.id}${cls ? ` · ${cls}` : ""} · ${m.area} px · ${m.source}${iou}`
      + `${stab} · ${m.review_state}`;
    li.classList.toggle("hidden-mask", ann.hidden.has(m.id));
    li.classList.toggle("proposed", m.prefill_state === "proposed");
    // Stage 3: made by no person; set apart until a reviewer approves or rejects it.
    const automatic = m.source === "automatic";
    li.classList.toggle("automatic", automatic);
    li.append(swatch);
    if (automatic) {
      const tag = document.createElement("span");
      tag.className = "tag-auto";
      tag.textContent = "AUTO";
      tag.title = "automatic mask (stage 3): no person made it; review it";
      li.append(tag);
    }
    li.append(label);
    if (m.prefill_state) {
      // Pre-filled (stage 2): "pre-filled" while it waits, then what the person decided.
      const tag = document.createElement("span");
      tag.className = `tag prefill-${m.prefill_state}`;
      tag.textContent = m.prefill_state === "proposed" ? "pre-filled" : `pre-filled, ${m.prefill_state}`;
      const score = m.meta && m.meta.detector_score;
      if (score !== undefined) tag.title = `detector score ${score.toFixed(2)}`;
      li.append(tag);
    }
    li.append(eye);
    li.addEventListener("click", () => ann.select(ann.masks[i]));
    list.append(li);
  });
  $("#mask-count").textContent = String(list.children.length);
  markSelected(ann);
}

/** Highlight the saved mask being edited in the list. */
export function markSelected(ann) {
  const id = ann.cur.editing ? ann.cur.editing.id : null;
  for (const li of document.querySelectorAll("#mask-list li")) {
    li.classList.toggle("selected", Number(li.dataset.id) === id);
  }
}
