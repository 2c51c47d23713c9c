/* Live pipeline job panel (admin): polls the panel's JSON endpoint every 2 s
   and updates the bar, step, message, timings and the cancel/retry buttons
   without reloading the page. Polling stops once the job is finished. */
(function () {
  "use strict";
  const PERIOD_MS = 2000;

  function text(panel, field, value) {
    const el = panel.querySelector('[data-field="' + field + '"]');
    if (el) { el.textContent = value; if (el.classList.contains("xai-trunc")) el.title = value; }
    return el;
  }

  function render(panel, job) {
    if (job.id === null) { text(panel, "status", "never run"); return; }
    const pct = Math.round(1000 * job.progress) / 10;
    const link = panel.querySelector('[data-field="link"]');
    link.textContent = "#" + job.id;
    link.href = panel.dataset.changeUrl.replace("/0/", "/" + job.id + "/");
    const status = text(panel, "status", job.status_display + (job.stopping ? " (stopping after this step)" : ""));
    status.dataset.status = job.status;
    panel.dataset.status = job.status;
    panel.querySelector(".xai-bar-fill").style.width = pct + "%";
    panel.querySelector(".xai-bar").setAttribute("aria-valuenow", String(pct));
    text(panel, "progress", job.progress_display);
    text(panel, "step", job.step || "\u2014");
    text(panel, "message", job.message);
    text(panel, "elapsed", job.elapsed_display ? "(" + job.elapsed_display + " so far)" : "");
    const error = text(panel, "error", job.error);
    error.hidden = !job.error;
    const body = panel.querySelector('[data-field="timings"]');
    body.replaceChildren(...job.timings.map(function (t) {
      const tr = document.createElement("tr");
      const th = document.createElement("th"); th.textContent = t.step;
      const td = document.createElement("td"); td.textContent = t.display;
      tr.append(th, td);
      return tr;
    }));
    text(panel, "total", job.total_display);
    for (const [action, allowed] of [["cancel", job.can_cancel], ["retry", job.can_retry]]) {
      const form = panel.querySelector('form[data-action="' + action + '"]');
      form.action = panel.dataset[action + "Url"].replace("/0/", "/" + job.id + "/");
      form.hidden = !allowed;
    }
  }

  function poll(panel) {
    fetch(panel.dataset.progressUrl, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (job) {
        render(panel, job);
        panel.dataset.polls = String(Number(panel.dataset.polls || 0) + 1);
        if (job.live || job.stopping) setTimeout(function () { poll(panel); }, PERIOD_MS);
      })
      .catch(function () { setTimeout(function () { poll(panel); }, PERIOD_MS); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".xai-job[data-progress-url]").forEach(poll);
  });
})();
