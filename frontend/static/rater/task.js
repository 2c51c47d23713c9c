// Rater task page: one task at a time through the JSON API.
// Every answer is POSTed as soon as it is given; the server stores it exactly
// once per task, so a double click or a retried request never counts twice,
// and a reload shows the same unanswered task again. The page always moves on:
// a task, a short wait (every task left is on someone else's screen, or the
// study is paused), or the end page. While a task is on screen and the page is
// visible, a heartbeat keeps the rater's hold on it.
// In MTurk's cross-site frame no cookie is sent, so the page was opened with
// the rater token in its URL (?t=...): the end page gets it the same way.
(function () {
  "use strict";
  const app = document.getElementById("app");
  const code = app.dataset.code;
  const token = app.dataset.token;
  const doneUrl = app.dataset.doneUrl;
  const kind = app.dataset.kind;
  const optionsBox = document.getElementById("options");
  const errorBox = document.getElementById("error");
  const noticeBox = document.getElementById("notice");
  const stimuli = document.getElementById("stimuli");
  const MAX_MS = 2147483647;
  let current = null;      // the task payload on screen
  let shownAt = 0;         // when its images finished loading (ms, performance clock)
  let busy = false;
  let heartbeat = null;    // interval id
  let retry = null;        // timeout id of a scheduled /next
  const tokenInUrl = new URLSearchParams(window.location.search).has("t");

  function goToDone(url) {
    const target = new URL(url || doneUrl, window.location.href);
    if (tokenInUrl) target.searchParams.set("t", token);
    window.location.assign(target.pathname + target.search);
  }

  async function api(path, options) {
    const res = await fetch("/api/r/" + encodeURIComponent(code) + path, Object.assign({
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-Rater-Token": token},
    }, options || {}));
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const err = new Error((body && body.message) || ("The server answered " + res.status));
      err.status = res.status;
      err.code = body && body.code;
      throw err;
    }
    return body;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  function showNotice(message) {
    noticeBox.textContent = message || "";
    noticeBox.hidden = !message;
  }

  function keyFor(index, count) {
    if (kind === "pairwise") return String(index + 1);
    if (index === count - 1) return "x";          // "I don't know"
    return index < 9 ? String(index + 1) : (index === 9 ? "0" : "");
  }

  function loadImage(img, url) {
    return new Promise(function (resolve, reject) {
      img.onload = function () { resolve(); };
      img.onerror = function () { reject(new Error("An image could not be loaded; reload the page.")); };
      img.src = url;
    });
  }

  function renderProgress(progress) {
    const done = Math.min(progress.answered + (current ? 1 : 0), progress.target);
    document.getElementById("progress-text").textContent =
      "Task " + done + " of " + progress.target;
    document.getElementById("progress-fill").style.width =
      (100 * Math.min(progress.answered, progress.target) / Math.max(progress.target, 1)) + "%";
  }

  function renderOptions(labels) {
    optionsBox.replaceChildren();
    labels.forEach(function (label, i) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "option";
      button.dataset.choice = String(i);
      const text = document.createElement("span");
      text.textContent = label;
      button.appendChild(text);
      const key = keyFor(i, labels.length);
      if (key) {
        const kbd = document.createElement("kbd");
        kbd.textContent = key.toUpperCase();
        button.appendChild(kbd);
      }
      button.addEventListener("click", function () { answer(i); });
      optionsBox.appendChild(button);
    });
  }

  function stopHeartbeat() {
    if (heartbeat !== null) { clearInterval(heartbeat); heartbeat = null; }
  }

  function startHeartbeat(seconds) {
    stopHeartbeat();
    heartbeat = setInterval(function () {
      if (!current || document.visibilityState !== "visible") return;
      api("/heartbeat", {method: "POST", body: JSON.stringify({assignment_id: current.assignment_id})})
        .catch(function () { /* the answer is stored anyway, flagged late if need be */ });
    }, Math.max(seconds, 5) * 1000);
  }

  function later(seconds) {
    if (retry !== null) clearTimeout(retry);
    retry = setTimeout(function () { retry = null; next(); }, Math.max(seconds || 5, 1) * 1000);
  }

  async function show(payload) {
    if (payload.done) {
      stopHeartbeat();
      goToDone(payload.done_url);
      return;
    }
    current = null;
    stimuli.hidden = true;
    optionsBox.replaceChildren();
    renderProgress(payload.progress);
    if (!payload.task) {             // wait or paused: say so, ask again soon
      stopHeartbeat();
      showNotice(payload.message);
      busy = false;
      later(payload.retry_after);
      return;
    }
    showNotice("");
    const task = payload.task;
    const loads = [];
    if (task.kind === "pairwise") {
      loads.push(loadImage(document.getElementById("left"), task.left_url));
      loads.push(loadImage(document.getElementById("right"), task.right_url));
      loads.push(loadImage(document.getElementById("original"), task.original_url));
      document.getElementById("predicted").textContent = task.predicted_class;
    } else {
      loads.push(loadImage(document.getElementById("map"), task.map_url));
    }
    await Promise.all(loads);
    current = task;
    renderProgress(payload.progress);
    renderOptions(task.options);
    stimuli.hidden = false;
    shownAt = performance.now();
    startHeartbeat(payload.heartbeat_s);
    busy = false;
  }

  function enableOptions() {
    optionsBox.querySelectorAll("button").forEach(function (b) {
      b.disabled = false;
      b.classList.remove("chosen");
    });
  }

  async function answer(choice) {
    if (busy || !current) return;
    busy = true;
    showError("");
    optionsBox.querySelectorAll("button").forEach(function (b) {
      b.disabled = true;
      if (b.dataset.choice === String(choice)) b.classList.add("chosen");
    });
    const body = {
      assignment_id: current.assignment_id,
      choice: choice,
      response_ms: Math.min(Math.max(Math.round(performance.now() - shownAt), 0), MAX_MS),
    };
    try {
      const result = await api("/responses", {method: "POST", body: JSON.stringify(body)});
      await show(result.next);
    } catch (err) {
      if (err.code === "closed") {
        goToDone(doneUrl);
      } else if (err.status === 409 || err.status === 404) {
        showError(err.message);
        await next();
      } else {
        showError(err.message + (err.status ? "" : " Check your connection and try again."));
        enableOptions();
        busy = false;
      }
    }
  }

  async function next() {
    busy = true;
    try {
      await show(await api("/next"));
    } catch (err) {
      showError(err.message + (err.status ? "" : " Retrying…"));
      if (!err.status || err.status >= 500) later(5);
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || !current || busy) return;
    const key = event.key.toLowerCase();
    const count = current.options.length;
    for (let i = 0; i < count; i++) {
      if (keyFor(i, count) === key) {
        event.preventDefault();
        answer(i);
        return;
      }
    }
  });

  next();
})();
