// Auditdesk: small progressive enhancements; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Show each UTC time in the viewer's own zone beside it.
  for (const el of document.querySelectorAll("time[data-local]")) {
    const t = new Date(el.getAttribute("datetime"));
    if (isNaN(t)) continue;
    const local = document.createElement("span");
    local.className = "sub";
    local.textContent = t.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" }) + " local";
    el.after(local);
  }
});
