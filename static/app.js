// Auditdesk: small progressive enhancements; every page works without this file.
"use strict";
// A logged-in page brought back by Back from the browser's memory (the
// back/forward cache, which can keep even no-store pages) is asked for again,
// so that after logout it is the login page, not the log, that shows.
window.addEventListener("pageshow", (event) => {
  if (event.persisted && document.querySelector("form.logout")) location.reload();
});
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
    const bar = form.querySelector("input[data-search]");
    if (bar) suggestSearchTerms(bar, form);
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

// The search bar's key for each field of the form (CONTRACT.md, "the search bar").
const SEARCH_KEYS = {
  action: "action", resource_type: "resource_type", resource_target: "target", user: "user",
  resource_id: "resource_id", request_id: "request_id", status: "status", from: "from", to: "to",
};

// Whether a field holds something else than what the server drew for this URL.
function changed(el) {
  if (el.tagName === "SELECT") {
    // Without a `selected` attribute the first option is the one drawn.
    const drawn = [...el.options].find((o) => o.defaultSelected) || el.options[0];
    return !!drawn && !drawn.selected;
  }
  return el.value !== el.defaultValue;
}

// A space as the server's char::is_whitespace has it (JS's \s also has
// U+FEFF, and lacks U+0085).
const SPACE = /[^\S\ufeff]|\u0085/;

// The bar's terms as typed, split as the server reads them (audit::search):
// an optional -, then a "quoted phrase" or key:"quoted value" (\" and \\
// inside), or a word up to the next space.
function searchTerms(text) {
  const terms = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && SPACE.test(text[i])) i++;
    if (i >= text.length) break;
    const start = i;
    if (text[i] === "-" && i + 1 < text.length && !SPACE.test(text[i + 1])) i++;
    const key = /^[A-Za-z_]+:"/.exec(text.slice(i));
    if (key) i += key[0].length - 1;
    if (text[i] === '"') {
      i++;
      while (i < text.length && text[i] !== '"') {
        i += text[i] === "\\" && (text[i + 1] === '"' || text[i + 1] === "\\") ? 2 : 1;
      }
      i++;
    }
    while (i < text.length && !SPACE.test(text[i])) i++;
    terms.push(text.slice(start, Math.min(i, text.length)));
  }
  return terms;
}

// Whether a term opens a quoted phrase or value that it does not close.
function openQuote(term) {
  const m = /^-?(?:[A-Za-z_]+:)?"/.exec(term);
  if (!m) return false;
  for (let i = m[0].length; i < term.length; i++) {
    if (term[i] === "\\" && (term[i + 1] === '"' || term[i + 1] === "\\")) i++;
    else if (term[i] === '"') return false;
  }
  return true;
}

// The bar's text without the terms of `key` (`key:v`, `-key:v`, `key:"v w"`),
// every other term exactly as it was.
function withoutKey(text, key) {
  const names = key === "target" ? ["target", "resource_target"] : [key];
  return searchTerms(text)
    .filter((t) => {
      const m = /^-?([A-Za-z_]+):/.exec(t);
      return !(m && names.includes(m[1].toLowerCase()));
    })
    .join(" ");
}

// Submits the filter form without its empty fields, so bookmarks stay short.
// A field that shows the bar's term stays out of the URL unless it was
// changed; a changed field takes the place of its key's terms in the bar, so
// the bar and the fields keep showing one view.
function submitClean(form) {
  const bar = form.querySelector("input[data-search]");
  for (const el of form.elements) {
    const key = SEARCH_KEYS[el.name];
    if (bar && key && changed(el)) bar.value = withoutKey(bar.value, key);
  }
  const params = new URLSearchParams();
  for (const el of form.elements) {
    if (!el.name || el.disabled || (el.hasAttribute("data-from-search") && !changed(el))) continue;
    const v = el.value;
    if (v !== "" && !(el.name === "limit" && v === "50")) params.append(el.name, v);
  }
  const qs = params.toString();
  // getAttribute: form.action would be the field named "action".
  window.location.assign(form.getAttribute("action") + (qs ? "?" + qs : ""));
}

// Suggests the search bar's keys, and the values of the key being typed: the
// actions, resource types and statuses from the page's own dropdowns, users
// and targets from the server (as their fields do). Each suggestion is the
// whole bar with its last term completed.
function suggestSearchTerms(bar, form) {
  const list = bar.list;
  if (!list) return;
  const keys = Object.values(SEARCH_KEYS);
  const fromSelect = (name) => [...form.elements.namedItem(name).options].map((o) => o.value).filter((v) => v);
  const quote = (v) => (/[\s\u0085"]/.test(v) || v === "" ? '"' + v.replace(/[\\"]/g, "\\$&") + '"' : v);
  let asked = 0;
  let timer = 0;
  const show = (head, items) => {
    list.replaceChildren(...items.slice(0, 20).map((text) => {
      const o = document.createElement("option");
      o.value = head + text;
      const label = visible(o.value);
      if (label !== o.value) o.label = label;
      return o;
    }));
  };
  bar.addEventListener("input", () => {
    clearTimeout(timer);
    const ask = ++asked;
    const text = bar.value;
    // Inside an open quoted phrase or value: nothing to suggest.
    if (openQuote(searchTerms(text).pop() || "")) return list.replaceChildren();
    const m = /(^|\s)(-?)([A-Za-z_]*)(?::(\S*))?$/.exec(text);
    if (!m) return list.replaceChildren();
    const head = text.slice(0, m.index + m[1].length) + m[2];
    const key = m[3].toLowerCase();
    if (m[4] === undefined) {
      return show(head, keys.filter((k) => key !== "" && k.startsWith(key)).map((k) => k + ":"));
    }
    const part = m[4].replace(/^"/, "");
    const local = { action: () => fromSelect("action"), resource_type: () => fromSelect("resource_type"), status: () => ["success", "failure"] }[key];
    if (local) {
      return show(head, local().filter((v) => v.includes(part)).map((v) => key + ":" + quote(v)));
    }
    const field = { user: "user", target: "resource_target", resource_target: "resource_target" }[key];
    if (!field) return list.replaceChildren();
    timer = setTimeout(async () => {
      try {
        const params = new URLSearchParams({ field, q: part });
        const r = await fetch("/manage/audit/suggestions?" + params, { credentials: "same-origin" });
        if (!r.ok || ask !== asked) return;
        const { values } = await r.json();
        if (ask === asked) show(head, values.map((v) => key + ":" + quote(v)));
      } catch (e) {
        // No suggestions this time; the bar still searches what is typed.
      }
    }, 150);
  });
}

// A value as the page draws it (audit::visible on the server): control, bidi,
// zero-width and other invisible characters as \n, \r, \t or \u{...}, so a
// suggestion cannot hide or reorder text.
function visible(v) {
  const named = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };
  return v.replace(/[\u0000-\u001f\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]|\udb40[\udc00-\udfff]/g,
    (c) => named[c] || "\\u{" + c.codePointAt(0).toString(16) + "}");
}
