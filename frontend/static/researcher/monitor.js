/* Live monitor of a study: polls the monitor JSON every 5 s and redraws the
 * experiment rows and the rater table in place (no page reload). Filters
 * (rater id, experiment, flagged/excluded) go to the server with each poll;
 * the server applies them and the row limit. All values go in as text. */
(function () {
  "use strict";

  function fmtEta(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds === 0) return "done";
    var m = Math.round(seconds / 60);
    if (m < 1) return "< 1 min";
    if (m < 120) return m + " min";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }
  function fmtShare(v) {
    return v === null || v === undefined ? "—" : Math.round(v * 100) + "%";
  }
  function fmtMs(v) {
    return v === null || v === undefined ? "—" : (v / 1000).toFixed(1) + " s";
  }
  function cell(tr, text, opts) {
    var el = document.createElement(opts && opts.header ? "th" : "td");
    if (opts && opts.header) el.scope = "row";
    if (opts && opts.cls) el.className = opts.cls;
    if (opts && opts.title) el.title = opts.title;
    el.textContent = text;
    tr.appendChild(el);
    return el;
  }

  function Monitor(root) {
    this.root = root;
    this.url = root.dataset.monitorUrl;
    this.interval = parseInt(root.dataset.intervalMs || "5000", 10);
    this.status = root.querySelector("[data-role=status]");
    this.alerts = root.querySelector("[data-role=alerts]");
    this.expBody = root.querySelector("[data-role=experiments] tbody");
    this.raterBody = root.querySelector("[data-role=raters] tbody");
    this.raterCaption = root.querySelector("[data-role=raters-caption]");
    this.form = root.querySelector("[data-role=filters]");
    this.timer = null;
    this.inflight = null;
    this.seq = 0;
    var self = this;
    var debounce = null;
    this.form.addEventListener("input", function () {
      clearTimeout(debounce);
      debounce = setTimeout(function () { self.poll(); }, 250);
    });
    this.form.addEventListener("change", function () { self.poll(); });
    // Enter in a filter field filters in place (no inline onsubmit: CSP).
    this.form.addEventListener("submit", function (event) { event.preventDefault(); });
  }

  Monitor.prototype.query = function () {
    var params = new URLSearchParams();
    ["q", "experiment", "only"].forEach(function (name) {
      var v = this.form.elements[name].value.trim();
      if (v) params.set(name, v);
    }, this);
    var s = params.toString();
    return this.url + (s ? "?" + s : "");
  };

  Monitor.prototype.schedule = function () {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.poll(); }, this.interval);
  };

  Monitor.prototype.poll = function () {
    var self = this;
    var seq = ++this.seq;
    clearTimeout(this.timer);
    fetch(this.query(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) {
        if (seq !== self.seq) return; // a newer poll (filter change) answers instead
        self.render(data);
        self.root.dataset.updates = String(parseInt(self.root.dataset.updates || "0", 10) + 1);
      })
      .catch(function (err) {
        if (seq === self.seq) self.status.textContent = "Update failed (" + err.message + "); retrying.";
      })
      .then(function () { if (seq === self.seq) self.schedule(); });
  };

  Monitor.prototype.render = function (data) {
    var t = data.totals;
    var when = new Date(data.now);
    this.status.textContent =
      t.answers + " of " + t.target + " answers · " + t.on_screen + " on screen now · updated " +
      when.toLocaleTimeString();
    var warn = [];
    if (t.stranded) warn.push(t.stranded + " stranded slot" + (t.stranded === 1 ? "" : "s") +
      " (lease ran out, not freed yet)");
    if (t.late) warn.push(t.late + " late answer" + (t.late === 1 ? "" : "s") + " (" + t.over_quota + " over quota)");
    if (t.reopened) warn.push(t.reopened + " reopened answer" + (t.reopened === 1 ? "" : "s"));
    this.alerts.hidden = warn.length === 0;
    this.alerts.textContent = warn.join(" · ");

    var frag = document.createDocumentFragment();
    data.experiments.forEach(function (e) {
      var tr = document.createElement("tr");
      tr.dataset.experiment = e.slug;
      cell(tr, e.name, { header: true });
      cell(tr, e.answers + " / " + e.target, { cls: "num", title: e.target ? Math.round(100 * e.answers / e.target) + "%" : "" });
      cell(tr, e.answers_per_minute.toFixed(1), { cls: "num", title: e.answers_last_window + " in the last " + data.rate_window_seconds / 60 + " min" });
      cell(tr, fmtEta(e.eta_seconds), { cls: "num" });
      cell(tr, String(e.on_screen), { cls: "num" });
      cell(tr, String(e.stranded), { cls: "num" + (e.stranded ? " warn" : "") });
      cell(tr, String(e.late), { cls: "num" + (e.late ? " warn" : "") });
      cell(tr, String(e.over_quota), { cls: "num" });
      cell(tr, String(e.reopened), { cls: "num" });
      cell(tr, e.participations + " (" + e.excluded + ")", { cls: "num" });
      frag.appendChild(tr);
    });
    this.expBody.replaceChildren(frag);

    frag = document.createDocumentFragment();
    data.raters.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.dataset.rater = r.rater_id;
      if (r.excluded_at) tr.className = "excluded";
      else if (r.flags.length) tr.className = "flagged";
      cell(tr, r.rater_id.slice(0, 8), { header: true, cls: "mono", title: r.rater_id });
      cell(tr, r.source);
      cell(tr, r.external_id, { cls: "mono" });
      cell(tr, r.experiment);
      cell(tr, r.status);
      cell(tr, r.answered + " / " + r.target, { cls: "num" });
      cell(tr, r.checks_answered + " / " + r.checks_planned, { cls: "num" });
      cell(tr, fmtMs(r.median_ms), { cls: "num" });
      cell(tr, fmtShare(r.attention_accuracy), { cls: "num" });
      cell(tr, fmtShare(r.catch_accuracy), { cls: "num" });
      cell(tr, fmtShare(r.share_left_more), { cls: "num" });
      cell(tr, r.flags.join(", ") || "—");
      cell(tr, r.excluded_at ? "yes: " + (r.exclusion_reasons || "rules") : "no",
        { title: r.excluded_at ? "excluded at " + r.excluded_at : "" });
      frag.appendChild(tr);
    });
    if (!data.raters.length) {
      var empty = document.createElement("tr");
      var td = cell(empty, "No raters match.");
      td.colSpan = 13;
      frag.appendChild(empty);
    }
    this.raterBody.replaceChildren(frag);
    this.raterCaption.textContent = "Raters: " + data.raters.length + " shown of " + data.raters_total +
      " matching" + (data.raters_total > data.raters.length ? " (newest first; narrow the filters to see others)" : "");
  };

  function start() {
    document.querySelectorAll("section.monitor[data-monitor-url]").forEach(function (root) {
      if (!root.dataset.monitorUrl || root.dataset.started) return;
      root.dataset.started = "1";
      new Monitor(root).poll();
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
