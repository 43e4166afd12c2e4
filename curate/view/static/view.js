/* curate view: keyboard navigation and chunked rendering of long trace text. Plain DOM code, no framework.
   Text from the data is only ever assigned through textContent, never parsed as HTML. */
(function () {
  "use strict";
  const CHUNK = 20000;

  function typing(e) {
    const t = e.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }

  function rows() { return Array.from(document.querySelectorAll("#trace-table tbody tr.row")); }

  function select(i) {
    const all = rows();
    if (!all.length) return;
    i = Math.max(0, Math.min(all.length - 1, i));
    all.forEach((r) => r.classList.remove("selected"));
    all[i].classList.add("selected");
    all[i].scrollIntoView({ block: "nearest" });
    const a = all[i].querySelector("a.open");
    if (a) a.focus({ preventScroll: true });
  }

  function selected() { return rows().findIndex((r) => r.classList.contains("selected")); }

  function go(sel) {
    const el = document.querySelector(sel);
    if (el && el.getAttribute("href")) window.location.href = el.getAttribute("href");
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (typing(e)) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    const list = rows().length > 0;
    if (e.key === "/") {
      const q = document.getElementById("q");
      if (q) { e.preventDefault(); q.focus(); }
    } else if (e.key === "j" || e.key === "ArrowDown" && list) {
      if (list) { e.preventDefault(); select(selected() + 1); } else go("link[rel=next]");
    } else if (e.key === "k" || e.key === "ArrowUp" && list) {
      if (list) { e.preventDefault(); select(selected() < 0 ? 0 : selected() - 1); } else go("link[rel=prev]");
    } else if (e.key === "Enter" && list && selected() >= 0) {
      e.preventDefault();
      const a = rows()[selected()].querySelector("a.open");
      if (a) window.location.href = a.getAttribute("href");
    } else if (e.key === "n") {
      list ? go("a[rel=next-page]") : go("link[rel=next]");
    } else if (e.key === "p") {
      list ? go("a[rel=prev-page]") : go("link[rel=prev]");
    } else if (e.key === "u") {
      go("a.up");
    } else if (e.key === "t") {
      const d = document.getElementById("thinking");
      if (d) d.open = !d.open;
    }
  });

  document.addEventListener("click", function (e) {
    const tr = e.target.closest && e.target.closest("#trace-table tr.row");
    if (!tr || e.target.closest("a")) return;
    const a = tr.querySelector("a.open");
    if (a) window.location.href = a.getAttribute("href");
  });

  // Long text: the page holds the first chunk; the rest sits in a JSON island and is appended as the reader
  // nears the end of what is shown.
  function more(pre) {
    const island = document.getElementById(pre.dataset.island);
    if (!island) return false;
    if (!pre._text) pre._text = JSON.parse(island.textContent);
    const shown = Number(pre.dataset.shown || 0);
    if (shown >= pre._text.length) return false;
    pre.appendChild(document.createTextNode(pre._text.slice(shown, shown + CHUNK)));
    pre.dataset.shown = String(shown + CHUNK);
    return true;
  }

  function lazy() {
    document.querySelectorAll("pre.lazy").forEach(function (pre) {
      if (pre._watched) return;
      pre._watched = true;
      pre.addEventListener("scroll", function () {
        if (pre.scrollTop + pre.clientHeight > pre.scrollHeight - 2000) more(pre);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", lazy);
  document.addEventListener("htmx:afterSwap", lazy);
})();
