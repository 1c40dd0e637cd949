// Auditdesk: small progressive enhancements; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  document.documentElement.classList.add("js");
  // Show each UTC time in the viewer's own zone beside it.
  for (const el of document.querySelectorAll("time[data-local]")) {
    const t = new Date(el.getAttribute("datetime"));
    if (isNaN(t)) continue;
    const local = document.createElement("span");
    local.className = "sub";
    local.textContent = t.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" }) + " local";
    el.after(local);
  }
  // Copy buttons beside values drawn with markers: the exact stored value.
  for (const button of document.querySelectorAll("button.copy[data-copy-json]")) {
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(JSON.parse(button.dataset.copyJson));
        button.textContent = "Copied";
      } catch (e) {
        button.textContent = "Copy failed";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  }
  // Apply a dropdown at once; text and date fields apply on Enter or Apply.
  const form = document.getElementById("filters");
  if (form) {
    for (const el of form.querySelectorAll("[data-autosubmit]")) {
      el.addEventListener("change", () => submitClean(form));
    }
    form.addEventListener("submit", (ev) => { ev.preventDefault(); submitClean(form); });
    // Back and Forward may restore the page as it was left, with a choice
    // made just before leaving still showing: reset the form to what the
    // server rendered for this URL.
    window.addEventListener("pageshow", () => form.reset());
    for (const input of form.querySelectorAll("input[data-suggest]")) suggestAsTyped(input);
  }
});

// Fills a text filter's suggestion list with the most used values that contain
// what is typed (the page itself lists only the most used few).
function suggestAsTyped(input) {
  const list = input.list;
  if (!list) return;
  let timer = 0;
  let asked = 0;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    // Any answer still on its way is for older text from now on.
    const ask = ++asked;
    timer = setTimeout(async () => {
      const params = new URLSearchParams({ field: input.dataset.suggest, q: input.value });
      try {
        const r = await fetch("/manage/audit/suggestions?" + params, { credentials: "same-origin" });
        if (!r.ok || ask !== asked) return;
        const { values } = await r.json();
        if (ask !== asked) return;
        list.replaceChildren(...values.map((v) => {
          const o = document.createElement("option");
          o.value = v;
          const label = visible(v);
          if (label !== v) o.label = label;
          return o;
        }));
      } catch (e) {
        // No suggestions this time; the field still filters by what is typed.
      }
    }, 150);
  });
}

// Submits the filter form without its empty fields, so bookmarks stay short.
function submitClean(form) {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(form)) {
    if (v !== "" && !(k === "limit" && v === "50")) params.append(k, v);
  }
  const qs = params.toString();
  // getAttribute: form.action would be the field named "action".
  window.location.assign(form.getAttribute("action") + (qs ? "?" + qs : ""));
}

// A value as the page draws it (audit::visible on the server): control, bidi,
// zero-width and other invisible characters as \n, \r, \t or \u{...}, so a
// suggestion cannot hide or reorder text.
function visible(v) {
  const named = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };
  return v.replace(/[\u0000-\u001f\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]|\udb40[\udc00-\udfff]/g,
    (c) => named[c] || "\\u{" + c.codePointAt(0).toString(16) + "}");
}
