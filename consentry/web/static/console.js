// The console's small enhancements; every page works without them.
// - Revealing an image: the reveal form is posted here, the colour copy shown from a
//   blob held only in memory, and the blurred copy put back after the configured seconds,
//   when the tab is hidden and when the page is left. The server records each reveal.
// - SLA countdowns tick every 30 seconds.
// - "Select all" on a queue page.
"use strict";

(function () {
  const shown = new Map(); // figure id -> {img, url, timer}

  function reblur(id) {
    const state = shown.get(id);
    if (!state) return;
    clearTimeout(state.timer);
    state.img.src = state.img.dataset.blurred;
    state.img.classList.remove("revealed");
    state.img.alt = state.img.alt.replace(", revealed in colour", ", blurred and grey");
    URL.revokeObjectURL(state.url);
    shown.delete(id);
  }

  function reblurAll() {
    for (const id of Array.from(shown.keys())) reblur(id);
  }

  function say(text) {
    const status = document.getElementById("reveal-status");
    if (status) status.textContent = text;
  }

  async function reveal(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const id = form.dataset.target;
    const figure = document.getElementById(id);
    const img = figure && figure.querySelector("img.preview");
    if (!img) return;
    reblur(id);
    const response = await fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      cache: "no-store",
    });
    if (!response.ok) {
      say(response.status === 429
        ? "You have reached this shift's limit of revealed images."
        : "The image could not be revealed (" + response.status + "). Reload the page.");
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const seconds = Number(form.dataset.reblurSeconds) || 10;
    img.src = url;
    img.classList.add("revealed");
    img.alt = img.alt.replace(", blurred and grey", ", revealed in colour");
    shown.set(id, { img, url, timer: setTimeout(() => reblur(id), seconds * 1000) });
    say("Revealed for " + seconds + " seconds.");
  }

  function duration(seconds) {
    const minutes = Math.floor(Math.abs(seconds) / 60);
    const hours = Math.floor(minutes / 60);
    if (hours >= 48) return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
    if (hours) return hours + " h " + (minutes % 60) + " min";
    return (minutes % 60) + " min";
  }

  function tick() {
    for (const el of document.querySelectorAll("time[data-due]")) {
      const left = (Date.parse(el.dataset.due) - Date.now()) / 1000;
      el.textContent = left < 0 ? "overdue by " + duration(left) : "due in " + duration(left);
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("urgent", left >= 0 && left < 7200);
    }
  }

  function selectAll() {
    const all = document.getElementById("select-all");
    if (!all) return;
    all.hidden = false;
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll('input[name="item"]:not(:disabled)')) {
        box.checked = all.checked;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const form of document.querySelectorAll("form.reveal")) {
      form.addEventListener("submit", reveal);
    }
    selectAll();
    setInterval(tick, 30000);
  });
  window.addEventListener("pagehide", reblurAll);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") reblurAll();
  });
})();
