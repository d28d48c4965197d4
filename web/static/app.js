// jn-qa page enhancements. The page works without this file: the form is a plain GET to /?q=…
// With it: answers load without a page reload (the server still renders them: one renderer, one
// place that escapes), the address bar keeps a linkable URL, and "Copy citation" buttons work.
"use strict";

(function () {
  var latest = 0;
  var shown = location.pathname + location.search;  // the address whose results are on screen

  function showCopyButtons(root) {
    root.querySelectorAll(".copy-group[hidden]").forEach(function (b) { b.hidden = false; });
  }

  // The citation the copy button copies: the note shown on the card, or the format chosen beside it.
  function citationFor(button) {
    var group = button.closest(".copy-group");
    var select = group && group.querySelector("select.cite-format");
    var format = select ? select.value : "";
    if (!format) { return Promise.resolve(button.getAttribute("data-citation") || ""); }
    var url = button.getAttribute("data-cite") + "?format=" + encodeURIComponent(format);
    return fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) { throw new Error("citation not available"); }
      return response.text();
    });
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP hosts other than localhost have no clipboard API: copy through a selection instead.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.copy");
    if (!button) { return; }
    var label = "Copy citation";
    citationFor(button).then(copyText).then(function () {
      button.textContent = "Copied";
      button.setAttribute("data-state", "done");
    }, function () {
      button.textContent = "Select the citation to copy it";
    }).then(function () {
      window.setTimeout(function () { button.textContent = label; button.removeAttribute("data-state"); }, 2000);
    });
  });

  function load(url, push) {
    var results = document.getElementById("results");
    if (!results || !window.fetch || !window.DOMParser) { window.location.href = url; return; }
    var ticket = ++latest;
    results.setAttribute("aria-busy", "true");
    fetch(url, { headers: { "Accept": "text/html" }, credentials: "same-origin" }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("text/html") !== 0) { throw new Error("not a page"); }
      return response.text();
    }).then(function (html) {
      if (ticket !== latest) { return; }
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("results");
      if (!fresh) { throw new Error("no results in page"); }
      // The heading and form change too (compact on results, filters kept): take the page's whole main.
      var main = document.querySelector("main"), freshMain = doc.querySelector("main");
      if (main && freshMain && freshMain.contains(fresh)) { main.replaceWith(freshMain); } else { results.replaceWith(fresh); }
      document.title = doc.title;
      var footer = document.querySelector("footer.site"), freshFooter = doc.querySelector("footer.site");
      if (footer && freshFooter) { footer.replaceWith(freshFooter); }
      if (push) { history.pushState({ jnqa: true }, "", url); }
      shown = url;
      showCopyButtons(fresh);
      var heading = fresh.querySelector("h2");
      if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus({ preventScroll: true }); }
    }).catch(function () {
      if (ticket === latest) { window.location.href = url; }
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id !== "ask" || form.method.toLowerCase() !== "get") { return; }
    event.preventDefault();
    var params = new URLSearchParams(new FormData(form));
    load(form.getAttribute("action") + "?" + params.toString(), true);
  });

  // Back and forward between questions; a jump to #anchor (the skip link) also fires popstate: ignore it.
  window.addEventListener("popstate", function () {
    var here = location.pathname + location.search;
    if (location.pathname === "/" && here !== shown) { load(here, false); }
  });

  document.addEventListener("DOMContentLoaded", function () { showCopyButtons(document); });
})();
