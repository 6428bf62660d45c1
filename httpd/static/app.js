// Postern webmail: a little plain JavaScript on server-rendered pages. Everything works
// without it; it adds keyboard shortcuts, clickable rows, the phone menu, confirmations,
// and new mail without a reload (server-sent events fed by IMAP IDLE).
"use strict";

(function () {
  const page = document.body.dataset.page;
  const folder = document.body.dataset.folder || "INBOX";

  // The phone layout hides the folders behind a button.
  const menu = document.getElementById("menu");
  if (menu) {
    menu.addEventListener("click", function () {
      document.body.classList.toggle("show-folders");
    });
  }

  // Forms that destroy something ask first.
  document.querySelectorAll("form.confirm").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.dataset.confirm)) e.preventDefault();
    });
  });

  // A click on a row of the message list opens the message (the checkbox aside).
  function bindRows() {
    document.querySelectorAll("#messages tr[data-href]").forEach(function (tr) {
      tr.addEventListener("click", function (e) {
        if (e.target.closest("input,a,button")) return;
        window.location = tr.dataset.href;
      });
    });
  }
  bindRows();

  // The cursor of the keyboard in the message list.
  let cursor = -1;
  function rows() { return Array.from(document.querySelectorAll("#messages tr[data-href]")); }
  function moveCursor(d) {
    const rs = rows();
    if (!rs.length) return;
    if (cursor >= 0 && rs[cursor]) rs[cursor].classList.remove("cursor");
    cursor = Math.max(0, Math.min(rs.length - 1, cursor + d));
    rs[cursor].classList.add("cursor");
    rs[cursor].scrollIntoView({ block: "nearest" });
  }
  function clickButton(form, op) {
    const b = document.querySelector("#" + form + ' button[name="op"][value="' + op + '"]');
    if (b) b.click();
  }
  function selectCursor() {
    const rs = rows();
    if (cursor < 0 || !rs[cursor]) return false;
    const box = rs[cursor].querySelector('input[type="checkbox"]');
    if (box) box.checked = true;
    return true;
  }
  function go(id) {
    const a = document.getElementById(id);
    if (a) window.location = a.href;
  }

  // Keyboard shortcuts, as in Gmail and mutt: j/k next/previous, o or Enter open,
  // u back to the list, c compose, r reply, a reply to all, f forward, s flag,
  // ! junk, # delete, / search.
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.closest("input,textarea,select")) return;
    const k = e.key;
    if (k === "/") { e.preventDefault(); const q = document.getElementById("q"); if (q) q.focus(); return; }
    if (k === "c") { go("compose"); return; }
    if (page === "list") {
      if (k === "j") moveCursor(1);
      else if (k === "k") moveCursor(-1);
      else if ((k === "o" || k === "Enter") && cursor >= 0) window.location = rows()[cursor].dataset.href;
      else if (k === "#" && selectCursor()) clickButton("listform", "delete");
      else if (k === "!" && selectCursor()) clickButton("listform", "junk");
      else if (k === "s" && selectCursor()) clickButton("listform", "flag");
    } else if (page === "msg") {
      if (k === "u") go("back");
      else if (k === "r") go("reply");
      else if (k === "a") go("replyall");
      else if (k === "f") go("forward");
      else if (k === "#") clickButton("msgform", "delete");
      else if (k === "!") clickButton("msgform", "junk");
      else if (k === "s") clickButton("msgform", "flag");
    }
  });

  // New mail without a reload: the server says "change" when the folder changes, and
  // the list and the folder counts are fetched again and swapped in.
  if (page === "list" && window.EventSource) {
    const es = new EventSource("/mail/events?f=" + encodeURIComponent(folder));
    let busy = false;
    es.addEventListener("change", function () {
      if (busy) return;
      busy = true;
      fetch(window.location.href, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          const doc = new DOMParser().parseFromString(html, "text/html");
          ["messages", "folders"].forEach(function (id) {
            const fresh = doc.getElementById(id), old = document.getElementById(id);
            if (fresh && old) old.replaceWith(document.adoptNode(fresh));
          });
          const h = doc.querySelector(".toolbar h2"), oh = document.querySelector(".toolbar h2");
          if (h && oh) oh.replaceWith(document.adoptNode(h));
          cursor = -1;
          bindRows();
        })
        .catch(function () {})
        .finally(function () { busy = false; });
    });
  }
})();
