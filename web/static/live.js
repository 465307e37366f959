// Live updates: every few seconds an open page asks /inbox/changes whether anything the person's inbox
// shows has changed. The answer is a change token sent as an ETag, so an unchanged inbox costs a 304
// with no body. When the token moves, the inbox page fetches itself and swaps its task lists and filter
// counts in place (ticked checkboxes stay ticked); every page updates the notification bell.
// Short requests only: gunicorn's threads are never held by a waiting client.
(() => {
  "use strict";
  const body = document.body;
  const url = body.dataset.liveUrl;
  if (!url) return;
  const interval = Number(body.dataset.liveInterval) || 3000;
  let etag = body.dataset.liveToken ? `"${body.dataset.liveToken}"` : null;
  let running = false;
  let stopped = false;
  let timer = null;

  function schedule() {
    window.clearTimeout(timer);
    if (!stopped) timer = window.setTimeout(poll, interval);
  }

  function setBadge(container, id, count, before) {
    if (!container) return;
    let badge = id ? container.querySelector(`#${id}`) : container.querySelector(".badge");
    if (count > 0) {
      if (!badge) {
        badge = document.createElement("span");
        badge.className = "badge";
        if (id) badge.id = id;
        if (before) container.append(" ");
        container.append(badge);
      }
      badge.textContent = String(count);
    } else if (badge) {
      badge.remove();
    }
  }

  function updateBell(unread) {
    const bell = document.querySelector("a.bell");
    if (bell) {
      setBadge(bell, "unread-count", unread, false);
      bell.setAttribute("aria-label", `Notifications, ${unread} unread`);
    }
    setBadge(document.querySelector(".nav-toggle-label"), null, unread, true);
  }

  async function refreshInbox() {
    const live = document.getElementById("inbox-live");
    if (!live) return;
    const response = await fetch(window.location.href, {credentials: "same-origin", cache: "no-store"});
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const ticked = new Set([...document.querySelectorAll("input[name=task]:checked")].map((box) => box.value));
    for (const id of ["inbox-live", "filter-list", "inbox-summary"]) {
      const now = document.getElementById(id);
      const next = fresh.getElementById(id);
      if (now && next) now.replaceWith(document.adoptNode(next));
    }
    for (const box of document.querySelectorAll("input[name=task]")) box.checked = ticked.has(box.value);
    const token = fresh.body.dataset.liveToken;
    if (token) etag = `"${token}"`;
    document.dispatchEvent(new CustomEvent("deptflow:inbox-updated"));
  }

  async function poll() {
    if (running || document.hidden) return;
    running = true;
    try {
      const headers = etag ? {"If-None-Match": etag} : {};
      const response = await fetch(url, {headers, credentials: "same-origin", cache: "no-cache"});
      if (response.redirected) {
        stopped = true;  // the session ended (sent to the login page)
      } else if (response.status === 200) {
        const data = await response.json();
        const moved = etag !== null && `"${data.token}"` !== etag;
        etag = `"${data.token}"`;
        updateBell(data.unread);
        if (moved) await refreshInbox();
      } else if (response.status !== 304) {
        stopped = true;  // logged out, or the page is gone: stop asking until the next page load
      }
    } catch (error) {
      // a dropped connection or a restarting server: try again at the next tick
    } finally {
      running = false;
      schedule();
    }
  }

  // a hidden tab does not ask; it catches up as soon as it is shown again
  document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  schedule();
})();
