// Rater task page: one task at a time through the JSON API.
// Every answer is POSTed as soon as it is given; the server stores it exactly
// once per task, so a double click or a retried request never counts twice,
// and a reload shows the same unanswered task again. The page always moves on:
// a task, a short wait (every task left is on someone else's screen, or the
// study is paused), or the end page. While a task is on screen and the page is
// visible, a heartbeat keeps the rater's hold on it.
// In MTurk's cross-site frame no cookie is sent, so the page was opened with
// the rater token in its URL (?t=...): the end page gets it the same way.
// Layout and accessibility: the next task's images are fetched (and decoded)
// while the answered one stays on screen, then all maps swap at once; focus
// goes back to the options after every answer. An experiment may ask for a
// minimum viewing time (options disabled until the images have been visible
// that long; response_ms, display to answer, records it and the server checks
// it) and a minimum screen width (a narrower window gets a polite page and
// never asks for a task).
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
  const PRELOAD_TIMEOUT_MS = 4000;  // then swap anyway; the DOM load reports a real failure
  const minViewingMs = parseInt(app.dataset.minViewingMs || "0", 10) || 0;
  const minScreenWidth = parseInt(app.dataset.minScreenWidth || "0", 10) || 0;
  const taskArea = document.getElementById("task-area");
  const tooSmall = document.getElementById("too-small");
  const viewingHint = document.getElementById("viewing-hint");
  const questionBox = document.getElementById("question");
  const defaultQuestion = questionBox ? questionBox.textContent : "";
  let current = null;      // the task payload on screen
  let shownAt = 0;         // when its images finished loading (ms, performance clock)
  let busy = false;
  let heartbeat = null;    // interval id
  let retry = null;        // timeout id of a scheduled /next
  let ready = false;       // the options of the task on screen accept answers
  let unlock = null;       // timeout id of the minimum viewing time
  let started = false;     // the first /next was sent (never on a too-small screen)
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

  // Shown when a stimulus fails to load (image storage down or slow): the answers
  // already sent are stored by the server, which needs no image storage for them.
  const IMAGE_ERROR = "The images could not be loaded. Your answers so far are saved; " +
    "please try again in a minute.";

  function loadImage(img, url) {
    return new Promise(function (resolve, reject) {
      img.onload = function () { resolve(); };
      img.onerror = function () {
        const err = new Error(IMAGE_ERROR);
        err.imageLoad = true;
        reject(err);
      };
      img.src = url;
    });
  }

  // The message with a "Try again" button: asks for the task again (the server
  // still holds it for this rater), which reloads its images.
  function showImageError() {
    current = null;
    ready = false;
    stopHeartbeat();
    stimuli.hidden = true;
    optionsBox.replaceChildren();
    const retryButton = document.createElement("button");
    retryButton.type = "button";
    retryButton.id = "retry-images";
    retryButton.textContent = "Try again";
    retryButton.addEventListener("click", function () {
      showError("");
      next();
    });
    errorBox.replaceChildren(document.createTextNode(IMAGE_ERROR + " "), retryButton);
    errorBox.hidden = false;
    busy = false;
  }

  // Fetch and decode images off-screen; resolves when all are ready, or after the
  // timeout (a slow image must not stall the page; the swap then waits for it).
  function preload(urls) {
    const all = Promise.all(urls.map(function (url) {
      const im = new Image();
      im.src = url;
      return im.decode().catch(function () { /* reported by the DOM load */ });
    }));
    return Promise.race([all, new Promise(function (r) { setTimeout(r, PRELOAD_TIMEOUT_MS); })]);
  }

  function imageUrls(task) {
    return task.kind === "pairwise"
      ? [task.left_url, task.right_url, task.original_url]
      : [task.map_url];
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

  // Focus goes back to the options after each answer (without scrolling the maps
  // away on a phone): the first option, or the group while they are locked.
  function focusOptions() {
    const first = optionsBox.querySelector("button:not([disabled])");
    (first || optionsBox).focus({preventScroll: true});
  }

  function setOptionsEnabled(enabled) {
    optionsBox.querySelectorAll("button").forEach(function (b) {
      b.disabled = !enabled;
      if (enabled) b.classList.remove("chosen");
    });
  }

  // The options of a new task: enabled at once, or after the minimum viewing time.
  function armOptions() {
    if (unlock !== null) { clearTimeout(unlock); unlock = null; }
    if (minViewingMs <= 0) {
      ready = true;
      focusOptions();
      return;
    }
    ready = false;
    setOptionsEnabled(false);
    optionsBox.classList.add("waiting");
    optionsBox.setAttribute("aria-disabled", "true");
    if (viewingHint) viewingHint.textContent = "Please look at the images; the answers unlock in a moment.";
    focusOptions();
    unlock = setTimeout(function () {
      unlock = null;
      ready = true;
      setOptionsEnabled(true);
      optionsBox.classList.remove("waiting");
      optionsBox.removeAttribute("aria-disabled");
      if (viewingHint) viewingHint.textContent = "";
      if (document.activeElement === optionsBox || document.activeElement === document.body) focusOptions();
    }, Math.max(minViewingMs - (performance.now() - shownAt), 0));
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
    if (!payload.task) {             // wait or paused: say so, ask again soon
      current = null;
      ready = false;
      stimuli.hidden = true;
      optionsBox.replaceChildren();
      renderProgress(payload.progress);
      stopHeartbeat();
      showNotice(payload.message);
      busy = false;
      later(payload.retry_after);
      return;
    }
    showNotice("");
    const task = payload.task;
    // The answered task stays on screen (its options disabled) while the next
    // one's images download; then every map changes in the same frame.
    await preload(imageUrls(task));
    const loads = [];
    if (task.kind === "pairwise") {
      loads.push(loadImage(document.getElementById("left"), task.left_url));
      loads.push(loadImage(document.getElementById("right"), task.right_url));
      loads.push(loadImage(document.getElementById("original"), task.original_url));
      const predicted = document.getElementById("predicted");
      predicted.textContent = task.predicted_class;
      predicted.title = task.predicted_class;  // the whole name, if the caption cuts it
    } else {
      loads.push(loadImage(document.getElementById("map"), task.map_url));
    }
    try {
      await Promise.all(loads);
    } catch (err) {
      if (!err.imageLoad) throw err;
      showImageError();  // the answered task is gone; nothing to answer until a retry
      return;
    }
    current = task;
    // An attention check asks its own question (it names the option to choose).
    if (questionBox) {
      questionBox.textContent = task.question || defaultQuestion;
      questionBox.classList.toggle("instructed", Boolean(task.question));
    }
    renderProgress(payload.progress);
    renderOptions(task.options);
    stimuli.hidden = false;
    shownAt = performance.now();
    armOptions();
    startHeartbeat(payload.heartbeat_s);
    busy = false;
  }

  function enableOptions() {
    setOptionsEnabled(true);
    focusOptions();
  }

  async function answer(choice) {
    if (busy || !current || !ready) return;
    busy = true;
    ready = false;
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
        ready = true;
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
    if (event.altKey || event.ctrlKey || event.metaKey || !current || busy || !ready) return;
    if (taskArea.hidden) return;
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

  // A researcher may require a minimum window width: below it the page says so
  // politely and asks the server for nothing; it continues when the window grows.
  function fitsScreen() {
    const fits = !minScreenWidth || window.innerWidth >= minScreenWidth;
    tooSmall.hidden = fits;
    taskArea.hidden = !fits;
    if (fits && !started) {
      started = true;
      next();
    }
  }

  window.addEventListener("resize", fitsScreen);
  fitsScreen();
})();
