// The queue page (GET /api/queue, polled) and the sweeps pages (GET /api/sweeps[/ID]).
// Uses app.js's helpers (el, api, poll, num, when, link, status).
"use strict";

const jobLink = (id) => link(`#/jobs/${encodeURIComponent(id)}`, id);
const seconds = (s) => (typeof s !== "number" ? "" : s < 120 ? `${s.toFixed(1)} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);
const headRow = (heads) => el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, h))));
const tableOr = (id, heads, rows, none) => (rows.length
  ? el("table", { id }, headRow(heads), el("tbody", {}, rows)) : el("div", { class: "empty", id }, none));

function queueView() {
  const classes = el("div", { id: "queue-classes" });
  const running = el("div", { class: "card" });
  const tenants = el("div", { class: "card" });
  const trainers = el("div", { class: "card" });
  const sub = el("div", { class: "sub" }, "loading...");
  $view.replaceChildren(el("h1", {}, "Queue"), sub, classes, el("div", { class: "row" }, running, trainers), tenants);
  return poll(async () => {
    const r = await api("/api/queue");
    if (!r.ok) return;
    const q = r.body;
    window.sparkQueue = q;
    sub.textContent = `As of ${when(q.as_of)}: waiting jobs per class in the order a trainer takes them (a job's priority rises as it waits, every ${q.aging_s} s); this page updates by itself.`;
    classes.replaceChildren(...q.classes.map(queueClass));
    running.replaceChildren(el("h2", {}, "Running"), tableOr("queue-running", ["Job", "Name", "Class", "Priority", "Trainer", "Device", "Epoch", "Since"],
      q.running.map((j) => el("tr", { "data-job-id": j.job_id }, el("td", { class: "mono" }, jobLink(j.job_id)), el("td", {}, j.name || ""),
        el("td", {}, j.resource_class || ""), el("td", {}, j.priority || ""), el("td", { class: "mono" }, j.trainer || ""),
        el("td", {}, j.device || ""), el("td", { class: "num" }, j.total_epochs ? `${j.epoch || 0}/${j.total_epochs}` : ""), el("td", {}, when(j.since)))),
      "Nothing is running."));
    trainers.replaceChildren(el("h2", {}, "Trainers"), tableOr("queue-trainers", ["Trainer", "Group", "Classes", "GPUs", "Running", "Heard"],
      q.trainers.map((t) => el("tr", { "data-trainer-id": t.trainer_id }, el("td", { class: "mono" }, t.trainer_id), el("td", {}, t.grp),
        el("td", {}, t.classes.join(", ")), el("td", { class: "num" }, t.gpus), el("td", { class: "mono" }, t.running_job_id ? jobLink(t.running_job_id) : "idle"),
        el("td", {}, `${t.silent_s} s ago`))),
      "No live trainer: none has sent a heartbeat lately."));
    tenants.replaceChildren(el("h2", {}, "Tenants: usage against quota"),
      el("div", { class: "sub" }, "Per class: running jobs / quota, GPUs held / quota (+ what it may borrow from its cohort); no quota: ∞."),
      tableOr("queue-tenants", ["Tenant", "Weight", "Cohort", "Dominant share", ...q.classes.map((c) => c.class)],
        q.tenants.map((t) => el("tr", { "data-tenant": t.tenant }, el("td", {}, t.tenant), el("td", { class: "num" }, t.weight),
          el("td", {}, t.cohort || ""), el("td", { class: "num" }, num(t.dominant_share, 3)),
          q.classes.map((c) => el("td", { class: "num", "data-class": c.class }, quotaText(t.classes.find((u) => u.class === c.class)))))),
        "No tenant has run anything, and none is configured."));
  });
}

function quotaText(u) {
  if (!u) return "";
  const of = (n, borrow) => (n === null || n === undefined ? "∞" : `${n}${borrow ? ` (+${borrow})` : ""}`);
  return `${u.running_jobs} / ${of(u.quota_jobs, u.borrow_jobs)} jobs · ${u.gpus} / ${of(u.quota_gpus, u.borrow_gpus)} GPUs`;
}

function queueClass(c) {
  return el("div", { class: "card", "data-class": c.class },
    el("h2", {}, `Class ${c.class}`, el("span", { class: "sub" }, `  ${c.waiting.length} waiting · served by ${c.trainers.length ? c.trainers.join(", ") : "no live trainer"}`)),
    c.reason ? el("div", { class: "warning" }, c.reason) : null,
    c.waiting.length ? el("table", { class: "queue-waiting" }, headRow(["#", "Job", "Name", "Tenant", "Priority", "Waited", "Why it waits"]),
      el("tbody", {}, c.waiting.map((w) => el("tr", { "data-job-id": w.job_id, "data-position": w.position },
        el("td", { class: "num" }, w.position), el("td", { class: "mono" }, jobLink(w.job_id)), el("td", {}, w.name || ""),
        el("td", {}, w.tenant), el("td", {}, w.effective_priority !== w.priority ? `${w.priority} → ${w.effective_priority}` : w.priority),
        el("td", { class: "num" }, seconds(w.waited_s)), el("td", { class: "why" }, w.why || "next in line")))))
      : null);
}

// ---- sweeps ------------------------------------------------------------------------------

function sweepsView() {
  const tbody = el("tbody");
  const sub = el("div", { class: "sub" }, "loading...");
  $view.replaceChildren(el("h1", {}, "Sweeps"), sub, el("div", { class: "card" }, el("table", { id: "sweeps-table" },
    headRow(["Sweep", "Name", "Tenant", "Status", "Search", "Metric", "Trials", "Best", ""]), tbody)));
  let shown = "";
  return poll(async () => {
    const r = await api("/api/sweeps?limit=200");
    if (!r.ok) return;
    sub.textContent = `${r.body.total} sweeps, newest first`;
    const text = JSON.stringify(r.body.sweeps);
    if (text === shown) return;
    shown = text;
    tbody.replaceChildren(...r.body.sweeps.map((s) => {
      const id = encodeURIComponent(s.sweep_id);
      const end = s.ended || {};
      return el("tr", { "data-sweep-id": s.sweep_id }, el("td", { class: "mono" }, link(`#/sweeps/${id}`, s.sweep_id)), el("td", {}, s.name || ""),
        el("td", {}, s.tenant), el("td", {}, status(s.status || "validated")), el("td", {}, s.sampler),
        el("td", {}, `${s.metric} (${s.direction})`), el("td", { class: "num" }, `${s.planned}/${s.trials}`),
        el("td", {}, end.best_trial ? `trial ${end.best_trial}: ${num(end.value)}` : ""),
        el("td", {}, link(`#/compare?sweep=${id}`, "compare")));
    }));
    if (!r.body.sweeps.length) tbody.append(el("tr", {}, el("td", { colspan: 9, class: "empty" }, "No sweeps yet.")));
  });
}

function sweepView(sweepId) {
  const head = el("div", { class: "card", id: "sweep-head" });
  const trials = el("div", { class: "card", id: "sweep-trials" });
  $view.replaceChildren(head, trials);
  let shown = "";
  return poll(async () => {
    const r = await api(`/api/sweeps/${encodeURIComponent(sweepId)}`);
    if (!r.ok) {
      head.replaceChildren(el("h1", {}, sweepId), el("div", { class: "sub" }, r.body?.detail || "Not found."));
      return;
    }
    const s = r.body;
    const text = JSON.stringify(s);
    if (text === shown) return;
    shown = text;
    window.sparkSweep = s;
    const best = s.ranking[0];
    const end = s.ended || {};
    const facts = [["Status", status(s.status || "validated")], ["Search", s.sampler], ["Metric", `${s.metric} (${s.direction})`],
      ["Trials", `${s.trial_table.length} planned of ${s.trials}`], ["Tenant", s.tenant],
      ["Best", best !== undefined ? `trial ${best}: ${num(s.trial_table.find((t) => t.trial === best)[s.metric])}` : "none completed yet"],
      ["Result", end.model_id ? link(`#/models/${encodeURIComponent(end.model_id)}`, end.model_id) : ""], ["Reason", s.reason || ""]];
    head.replaceChildren(el("h1", {}, s.name || s.sweep_id), el("div", { class: "sub mono" }, s.sweep_id),
      el("dl", { class: "facts" }, facts.filter(([, v]) => v !== "" && v !== undefined && v !== null).map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      el("p", {}, link(`#/compare?sweep=${encodeURIComponent(s.sweep_id)}`, "Compare its trials: curves, parameters, parallel coordinates")));
    const params = [...new Set(s.trial_table.flatMap((t) => Object.keys(t.params)))].sort();
    trials.replaceChildren(el("h2", {}, "Trials"), tableOr("trials-table", ["Trial", "Job", ...params, "Status", s.metric, "Epoch", "Stopped", "Model"],
      s.trial_table.map((t) => el("tr", { "data-trial": t.trial, class: t.trial === best ? "best" : null },
        el("td", { class: "num" }, t.trial === best ? `★ ${t.trial}` : t.trial), el("td", { class: "mono" }, jobLink(t.job_id)),
        params.map((p) => el("td", { class: "mono" }, paramText(t.params[p]))), el("td", {}, status(t.status)),
        el("td", { class: "num" }, num(t[s.metric])), el("td", { class: "num" }, t.epoch ?? ""),
        el("td", { class: "why" }, t.stopped ? `epoch ${t.stopped.epoch} (${t.stopped.rule}): ${t.stopped.reason}` : t.status === "rejected" ? t.reason : ""),
        el("td", { class: "mono" }, t.model_id ? link(`#/models/${encodeURIComponent(t.model_id)}`, t.model_id) : ""))),
      "No trial planned yet."));
  });
}
