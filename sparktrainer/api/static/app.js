// SparkTrainer dashboard: one page, routed by the URL's #fragment, reading the HTTP API.
// Everything the API returns is text from outside: it only ever reaches the page as text
// nodes or attribute values (el() below), never as HTML.
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "sparktrainer.token";
const $view = document.getElementById("view");
let stopView = () => {};

// ---- small helpers -----------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const num = (v, digits = 4) => (typeof v === "number" ? Number(v.toPrecision(digits)).toString() : "");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const bytes = (n) => {
  if (typeof n !== "number") return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
};
const secs = (v) => (typeof v === "number" ? `${v.toLocaleString(undefined, { maximumFractionDigits: 1 })} s` : "");
const link = (href, text) => el("a", { href }, text);
const status = (s) => el("span", { class: `status ${s}`, "data-status": s }, s);

function notice(text) {
  const box = document.getElementById("notice");
  box.hidden = !text;
  box.textContent = text || "";
}

const TOKEN_NOTICE = "The API wants a token: type it in the API token field above.";

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    ...options,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const live = document.getElementById("live");
  live.textContent = `updated ${new Date().toLocaleTimeString()}`;
  live.classList.remove("down");
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  // A page left behind may still get a 401 after the token was typed: a later answer clears it.
  if (response.status === 401) notice(TOKEN_NOTICE);
  else if (response.ok && document.getElementById("notice").textContent === TOKEN_NOTICE) notice("");
  return { status: response.status, ok: response.ok, body };
}

// Poll ``fn`` every POLL_MS until the view changes; a failed round shows, the next retries.
function poll(fn) {
  let alive = true;
  let timer = null;
  const round = async () => {
    if (!alive) return;
    try {
      await fn();
    } catch (e) {
      const live = document.getElementById("live");
      live.textContent = "API unreachable, retrying";
      live.classList.add("down");
    }
    if (alive) timer = setTimeout(round, POLL_MS);
  };
  round();
  return () => { alive = false; clearTimeout(timer); };
}

function progressBar(job) {
  const p = job.progress || {};
  const done = job.status === "completed";
  let fraction = 0;
  if (done) fraction = 1;
  else if (p.total_steps) fraction = (p.step || 0) / p.total_steps;
  else if (p.total_epochs) fraction = (p.epoch || 0) / p.total_epochs;
  const label = p.total_epochs ? `epoch ${p.epoch || 0}/${p.total_epochs}` : "";
  const steps = p.total_steps ? ` · step ${p.step || 0}/${p.total_steps}` : "";
  return el("span", { class: "progress", "data-fraction": fraction.toFixed(3) },
    el("span", { class: `bar${done ? " done" : ""}` },
      el("span", { style: `width:${Math.round(Math.min(1, fraction) * 100)}%` })),
    el("span", { class: "bartext" }, label + steps));
}

// ---- jobs --------------------------------------------------------------------------------

function jobsView() {
  const tbody = el("tbody");
  const count = el("div", { class: "sub" }, "loading...");
  const usage = el("tbody");
  $view.replaceChildren(
    el("h1", {}, "Jobs"), count,
    el("div", { class: "card" },
      el("table", { id: "jobs-table" },
        el("thead", {}, el("tr", {}, ["Job", "Name", "Status", "Progress", "Loss", "Accuracy", "Updated"]
          .map((h) => el("th", {}, h)))),
        tbody)),
    el("div", { class: "card" }, el("h2", {}, "Usage, last 30 days"),
      el("table", { id: "usage-table" },
        el("thead", {}, el("tr", {}, ["Tenant", "Class", "Attempts", "Jobs", "Trainer", "CPU", "GPU"]
          .map((h) => el("th", {}, h)))),
        usage)));
  return poll(async () => {
    await usageRows(usage);
    const r = await api("/api/jobs?limit=200");
    if (!r.ok) return;
    count.textContent = `${r.body.total} jobs, most recently updated first; this list updates by itself`;
    tbody.replaceChildren(...r.body.jobs.map((job) => {
      const p = job.progress || {};
      return el("tr", { "data-job-id": job.job_id },
        el("td", { class: "mono" }, link(`#/jobs/${encodeURIComponent(job.job_id)}`, job.job_id)),
        el("td", {}, job.name || ""),
        el("td", { class: "status-cell" }, status(job.status)),
        el("td", {}, progressBar(job)),
        el("td", { class: "num" }, num(p.val_loss ?? p.loss)),
        el("td", { class: "num" }, num(p.val_accuracy ?? p.accuracy, 3)),
        el("td", {}, when(job.updated_at)));
    }));
    if (!r.body.jobs.length) tbody.append(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No jobs yet: submit one.")));
  });
}

// Each tenant's usage per class (GET /api/usage: the tenants this token may read).
async function usageRows(tbody) {
  const r = await api("/api/usage");
  if (!r.ok) return;
  tbody.replaceChildren(...r.body.tenants.flatMap((t) => [...t.classes, { class: "all", ...t.totals }]
    .map((c) => el("tr", { "data-tenant": t.tenant, "data-class": c.class, "data-cpu-s": c.cpu_s, "data-attempts": c.attempts },
      el("td", {}, t.tenant), el("td", {}, c.class), el("td", { class: "num" }, c.attempts),
      el("td", { class: "num" }, c.jobs), el("td", { class: "num" }, secs(c.wall_s)),
      el("td", { class: "num" }, secs(c.cpu_s)), el("td", { class: "num" }, secs(c.gpu_s))))));
  if (!r.body.tenants.length) tbody.append(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No attempt has ended yet.")));
}

// ---- one job -----------------------------------------------------------------------------

const CHART_COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
const GROUP_ORDER = ["loss", "perplexity", "accuracy", "token_accuracy", "learning_rate", "samples_per_s", "gpu_memory_bytes"];
const rank = (group) => (GROUP_ORDER.includes(group) ? GROUP_ORDER.indexOf(group) : GROUP_ORDER.length);
const tick = (v) => (v === null ? "" : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(1) : Number(v.toPrecision(3)).toString());

class Charts {
  // One uPlot chart per group of series (``loss/train`` and ``loss/val`` share ``loss``).
  constructor(container) {
    this.container = container;
    this.series = {};
    this.cursor = 0;
    this.charts = {};
    window.sparkCharts = this.charts;
  }

  merge(answer) {
    if (answer.reset || this.cursor === 0) this.series = {};
    for (const [name, s] of Object.entries(answer.series)) {
      const old = this.series[name] || { steps: [], values: [] };
      const byStep = new Map(old.steps.map((step, i) => [step, old.values[i]]));
      s.steps.forEach((step, i) => byStep.set(step, s.values[i]));
      const steps = [...byStep.keys()].sort((a, b) => a - b);
      this.series[name] = { steps, values: steps.map((step) => byStep.get(step)) };
    }
    this.cursor = answer.cursor;
    this.draw();
  }

  draw() {
    const groups = {};
    for (const name of Object.keys(this.series).sort()) {
      (groups[name.split("/")[0]] ||= []).push(name);
    }
    if (!Object.keys(groups).length) {
      this.container.replaceChildren(el("div", { class: "empty" }, "No metrics reported yet."));
      return;
    }
    this.container.querySelector(".empty")?.remove();
    const ordered = Object.keys(groups).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    for (const group of ordered) this.drawGroup(group, groups[group]);
  }

  drawGroup(group, names) {
    const data = uPlot.join(names.map((n) => [this.series[n].steps, this.series[n].values]));
    const points = names.reduce((sum, n) => sum + this.series[n].steps.length, 0);
    let entry = this.charts[group];
    if (entry && entry.names.join() !== names.join()) {
      entry.plot.destroy();
      entry.box.remove();
      entry = null;
    }
    if (!entry) {
      const box = el("div", { class: "chart card", "data-group": group }, el("h3", {}, group));
      this.container.append(box);
      const width = () => Math.max(320, box.clientWidth - 36);
      const plot = new uPlot({
        width: width(), height: 220,
        scales: { x: { time: false } },
        axes: [{ label: "step" }, { size: 64, values: (u, ticks) => ticks.map(tick) }],
        series: [{ label: "step" }, ...names.map((n, i) => ({
          label: n, stroke: CHART_COLORS[i % CHART_COLORS.length], width: 2,
          spanGaps: true, points: { show: this.series[n].steps.length < 40 },
        }))],
      }, data, box);
      entry = this.charts[group] = { plot, box, names };
      new ResizeObserver(() => plot.setSize({ width: width(), height: 220 })).observe(box);
    } else {
      entry.plot.setData(data);
    }
    entry.box.dataset.points = String(points);
  }
}

function jobView(jobId) {
  const head = el("div");
  const charts = el("div", { class: "charts", id: "charts" });
  const details = el("div", { class: "row" });
  $view.replaceChildren(head, el("div", { class: "card" }, el("h2", {}, "Curves"), charts), details);
  const plots = new Charts(charts);
  let configShown = "";
  return poll(async () => {
    const r = await api(`/api/jobs/${encodeURIComponent(jobId)}`);
    if (r.status === 404) {
      head.replaceChildren(el("h1", {}, jobId), el("div", { class: "sub" }, "Not in the registry yet: it appears once the projector has seen it."));
      return;
    }
    if (!r.ok) return;
    const job = r.body;
    head.replaceChildren(jobHeader(job));
    // The log is uploaded with each checkpoint and at the end: fetched again when those change.
    const shown = JSON.stringify([job.status, job.errors, job.warnings, job.reason, job.checkpoints, job.config, job.model_id]);
    if (shown !== configShown) {
      configShown = shown;
      const logs = await jobLogs(job.job_id);
      details.replaceChildren(jobMessages(job), jobCheckpoints(job), logs, jobConfig(job));
    }
    const m = await api(`/api/jobs/${encodeURIComponent(jobId)}/metrics?since=${plots.cursor}`);
    if (m.ok && (m.body.cursor !== plots.cursor || m.body.reset)) plots.merge(m.body);
    else if (m.ok && plots.cursor === 0) plots.draw();
  });
}

function jobHeader(job) {
  const p = job.progress || {};
  const facts = [
    ["Status", status(job.status)],
    ["Progress", progressBar(job)],
    ["Kind", job.config_kind || ""],
    ["Device", job.device || ""],
    ["Attempt", job.attempt],
    ["Cause", job.cause ? [job.cause, job.signal ? `signal ${job.signal}` : "", job.retriable ? "a retry may help" : ""].filter(Boolean).join(", ") : ""],
    ["Samples/s", num(p.samples_per_s, 3)],
    ["ETA", typeof p.eta_s === "number" && job.status === "running" ? `${Math.round(p.eta_s)} s` : ""],
    ["Usage", job.usage && job.usage.attempts.length ? el("span", { id: "job-usage", "data-cpu-s": job.usage.cpu_s, "data-wall-s": job.usage.wall_s },
      `${secs(job.usage.wall_s)} on a trainer, ${secs(job.usage.cpu_s)} CPU, ${secs(job.usage.gpu_s)} GPU (${job.usage.attempts.length} attempt(s))`) : ""],
    ["Model", job.model_id ? link(`#/models/${encodeURIComponent(job.model_id)}`, job.model_id) : ""],
    ["Created", when(job.created_at)],
  ];
  return el("div", { class: "card", id: "job-head", "data-status": job.status },
    el("h1", {}, job.name || job.job_id),
    el("div", { class: "sub mono" }, job.job_id),
    el("dl", { class: "facts" }, facts.filter(([, v]) => v !== "" && v !== null && v !== undefined)
      .map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
}

function jobMessages(job) {
  const items = [
    ...(job.reason ? [el("li", { class: "error" }, job.reason)] : []),
    ...(job.errors || []).map((e) => el("li", { class: "error" }, e)),
    ...(job.warnings || []).map((w) => el("li", { class: "warning" }, w)),
  ];
  return el("div", { class: "card", id: "job-messages" }, el("h2", {}, "Errors and warnings"),
    items.length ? el("ul", { class: "messages" }, items) : el("div", { class: "empty" }, "None."));
}

// The latest attempt's log (text, not JSON: fetched here, not through api()); its last 64 KiB.
async function jobLogs(jobId) {
  const card = el("div", { class: "card", id: "job-logs" }, el("h2", {}, "Log"));
  const headers = {};
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  let r;
  try { r = await fetch(`/api/jobs/${encodeURIComponent(jobId)}/logs`, { headers }); } catch (e) { r = null; }
  if (!r || !r.ok) {
    const why = !r ? "The API did not answer." : r.status === 404 ? "No log yet: it is uploaded with each checkpoint and at the end."
      : r.status === 401 ? "Reading logs needs the API token." : `Not readable (HTTP ${r.status}).`;
    card.append(el("div", { class: "empty" }, why));
    return card;
  }
  const text = await r.text();
  card.append(el("div", { class: "sub" }, `attempt ${r.headers.get("X-Attempt")} (attempts with a log: ${r.headers.get("X-Attempts")}), ${bytes(Number(r.headers.get("X-Log-Size")))}`),
    el("pre", { class: "json log" }, text.length > 65536 ? "…" + text.slice(-65536) : text || "(empty)"));
  return card;
}

function jobCheckpoints(job) {
  const rows = (job.checkpoints || []).slice().reverse().map((c) => el("tr", {},
    el("td", { class: "num" }, c.epoch), el("td", { class: "num" }, c.step),
    el("td", { class: "num" }, bytes(c.size_bytes)),
    el("td", { class: "num" }, typeof c.upload_s === "number" ? `${c.upload_s.toFixed(2)} s` : ""),
    el("td", {}, when(c.at))));
  return el("div", { class: "card", id: "job-checkpoints" }, el("h2", {}, "Checkpoints"),
    rows.length ? el("table", {}, el("thead", {}, el("tr", {}, ["Epoch", "Step", "Size", "Upload", "Saved"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)) : el("div", { class: "empty" }, "None saved (or the job has ended and they were cleared)."));
}

function jobConfig(job) {
  return el("div", { class: "card", id: "job-config" }, el("h2", {}, "Config (as validated)"),
    job.config ? el("pre", { class: "json" }, JSON.stringify(job.config, null, 2)) : el("div", { class: "empty" }, "Not validated yet."));
}

// ---- models ------------------------------------------------------------------------------

function modelNode(model, currentId) {
  const extra = [];
  if (model.version !== undefined && model.version !== null) extra.push(el("span", { class: "chip" }, `v${model.version}`));
  for (const alias of model.aliases || []) extra.push(el("span", { class: "chip" }, alias));
  const cls = `node${model.model_id === currentId ? " current" : ""}${model.registered === false ? " unregistered" : ""}`;
  return el("span", { class: cls, "data-model-id": model.model_id },
    model.registered === false ? el("span", { class: "mono" }, model.model_id)
      : link(`#/models/${encodeURIComponent(model.model_id)}`, model.name || model.model_id),
    ...extra,
    el("span", { class: "meta" }, [model.framework, model.registered === false ? "not registered here" : when(model.created_at)].filter(Boolean).join(" · ")),
    model.data ? dataNode(model.data) : null);
}

// What a model was trained on: S3 objects by their sha256, a built-in set by its sampling.
function dataNode(d) {
  const sampling = Object.entries(d.sampling || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  const text = d.kind === "s3" ? `${d.source} · sha256 ${String(d.sha256).slice(0, 12)} · ${bytes(d.size_bytes)}` : `${d.source} (${sampling})`;
  return el("span", { class: "data mono", title: d.sha256 || sampling, "data-source": d.source, "data-sha256": d.sha256 || "" }, text);
}

function tree(roots, childrenOf, currentId) {
  const branch = (model, depth) => el("li", { "data-depth": depth }, modelNode(model, currentId),
    ...(childrenOf(model).length ? [el("ul", {}, childrenOf(model).map((c) => branch(c, depth + 1)))] : []));
  return el("ul", { class: "tree" }, roots.map((m) => branch(m, 0)));
}

// A registered model's NAME:VERSION; a model without a name has none.
function versionOf(m) {
  return m.registered_name && m.version != null ? `${m.registered_name}:${m.version}` : "";
}

// "deleted by ALICE, WHEN": the tombstone (or the archive), in words.
function retiredText(m) {
  const r = m.retired || {};
  const gone = m.status === "deleted";
  const by = gone ? r.deleted_by : r.archived_by;
  const at = gone ? r.deleted_at : r.archived_at;
  const purged = r.files_removed_at ? `files removed ${when(r.files_removed_at)}` : "";
  return [m.status, by ? `by ${by}` : "", at ? when(at) : "", purged].filter(Boolean).join(", ");
}

// A model's headline metric as `sparktrainer models list` prints it: "val_accuracy 0.9312".
const metricText = (h) => (h ? `${h.name} ${num(h.value)}` : "");

function modelsView() {
  const body = el("div", { class: "card", id: "models-tree" }, "loading...");
  const table = el("div", { class: "card" });
  $view.replaceChildren(el("h1", {}, "Models"), el("div", { class: "sub" }, "Lineage: each fine-tune sits under the model it started from."), body, table);
  let shown = "";
  return poll(async () => {
    const r = await api("/api/models?limit=1000");
    if (!r.ok) return;
    const text = JSON.stringify(r.body.models);
    if (text === shown) return;
    shown = text;
    const models = r.body.models;
    const byId = new Map(models.map((m) => [m.model_id, m]));
    const kids = new Map();
    for (const m of models) if (m.base_model_id && byId.has(m.base_model_id)) {
      if (!kids.has(m.base_model_id)) kids.set(m.base_model_id, []);
      kids.get(m.base_model_id).push(m);
    }
    const roots = models.filter((m) => !m.base_model_id || !byId.has(m.base_model_id)).reverse();
    body.replaceChildren(el("h2", {}, "Lineage"), models.length ? tree(roots, (m) => kids.get(m.model_id) || []) : el("div", { class: "empty" }, "No models registered yet."));
    const named = models.some((m) => m.registered_name);
    const heads = ["Model", ...(named ? ["Version", "Aliases"] : []), "Tenant", "Framework", "Task", "Metric", "Size", "Created"];
    table.replaceChildren(el("h2", {}, "All models"), el("table", { id: "models-table" },
      el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, h)))),
      el("tbody", {}, models.map((m) => el("tr", { "data-model-id": m.model_id },
        el("td", {}, link(`#/models/${encodeURIComponent(m.model_id)}`, m.name || m.model_id), el("div", { class: "mono sub" }, m.model_id)),
        ...(named ? [el("td", { class: "mono" }, versionOf(m)), el("td", { class: "mono" }, (m.aliases || []).join(", "))] : []),
        el("td", {}, m.tenant), el("td", {}, m.framework), el("td", {}, m.task), el("td", { class: "metric" }, metricText(m.headline_metric)),
        el("td", { class: "num" }, bytes(m.size_bytes)), el("td", {}, when(m.created_at)))))));
  });
}

async function modelView(modelId) {
  const id = encodeURIComponent(modelId);
  const [r, l] = await Promise.all([api(`/api/models/${id}`), api(`/api/models/${id}/lineage`)]);
  if (!r.ok) {
    $view.replaceChildren(el("h1", {}, modelId), el("div", { class: "sub" }, r.body?.detail || "Not found."));
    return () => {};
  }
  const m = r.body;
  const chain = [...(l.body?.ancestors || [])].reverse();
  const self = { ...l.body.model, version: m.version, aliases: m.aliases };
  const path = [...chain, self];
  const next = (node) => {
    const i = path.findIndex((p) => p.model_id === node.model_id);
    if (i >= 0 && i < path.length - 1) return [path[i + 1]];
    return node.model_id === self.model_id ? l.body.children : [];
  };
  const metrics = Object.entries(m.metrics || {}).map(([k, v]) => [el("dt", {}, k), el("dd", {}, num(v))]);
  $view.replaceChildren(
    el("div", { class: "card" }, el("h1", {}, m.name), el("div", { class: "sub mono" }, m.model_id),
      el("dl", { class: "facts" },
        ...[["Tenant", m.tenant], ["Framework", m.framework], ["Task", m.task], ["Version", versionOf(m)], ["Aliases", (m.aliases || []).join(", ")],
          ["Status", m.status === "live" ? "" : retiredText(m)],
          ["Trained by", link(`#/jobs/${encodeURIComponent(m.job_id)}`, m.job_id)], ["Created", when(m.created_at)],
          ["Tags", (m.tags || []).join(", ")], ["License", m.license], ["Size", bytes(m.size_bytes)]]
          .filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))),
    el("div", { class: "row" },
      el("div", { class: "card", id: "model-lineage" }, el("h2", {}, "Lineage"), tree([path[0]], next, self.model_id)),
      el("div", { class: "card" }, el("h2", {}, "Metrics"), metrics.length ? el("dl", { class: "facts" }, metrics) : el("div", { class: "empty" }, "None."))),
    el("div", { class: "card", id: "model-files" }, el("h2", {}, "Files"),
      el("table", {}, el("thead", {}, el("tr", {}, ["File", "Size", "SHA-256", "Key"].map((h) => el("th", {}, h)))),
        el("tbody", {}, (m.artifacts || []).map((a) => el("tr", {},
          el("td", { class: "mono" }, a.path), el("td", { class: "num" }, bytes(a.size_bytes)),
          el("td", { class: "mono", title: a.sha256 }, String(a.sha256).slice(0, 12)), el("td", { class: "mono" }, a.key)))))));
  return () => {};
}

// ---- submit ------------------------------------------------------------------------------

// The kinds of job the guide shows: what each field needs (``when``) reads the form's current
// type, framework, model_source, architecture and LoRA switch; a field whose kind this is not
// is hidden and left out of the job, so a fine-tune never carries the train-only fields.
const isTrain = (v) => v.type === "train";
const isTune = (v) => v.type === "finetune";
const isHf = (v) => v.framework === "huggingface";
const hubOrVision = (v) => isTune(v) && ["torchvision", "huggingface"].includes(v.model_source);
const withLora = (v) => isTune(v) && isHf(v) && v.lora === "true";

// Each field: where it goes in the job, when it applies, and the words (or the dotted path)
// a validator message names it by.
const FIELDS = [
  { key: "name", label: "Name", path: ["name"], words: ["name"], value: "digits classifier" },
  { key: "type", label: "Type", path: ["type"], options: ["train", "finetune"], words: ["job type", "type"] },
  { key: "framework", label: "Framework", path: ["framework"], options: ["pytorch", "huggingface"], words: ["framework"] },
  { key: "model_source", label: "Start from (fine-tunes)", path: ["config", "model_source"], options: ["model_id", "torchvision", "huggingface"], when: isTune, words: ["model_source"], hint: "model_id: a model of the registry; torchvision or huggingface: a pretrained model by name" },
  { key: "architecture", label: "Architecture", path: ["config", "architecture"], options: ["custom", "resnet"], when: (v) => isTrain(v) && !isHf(v), words: ["architecture"] },
  { key: "model_id", label: "Parent model", path: ["config", "model_id"], when: (v) => isTune(v) && v.model_source === "model_id", hint: "a model id, NAME:VERSION or NAME@ALIAS", words: ["model_id", "model with id"] },
  { key: "model_name", label: "Model name", path: ["config", "model_name"], when: (v) => (isTrain(v) && isHf(v)) || hubOrVision(v), hint: "a Hugging Face model or a torchvision one (resnet18, resnet50, vgg16, densenet121)", words: ["model_name"] },
  { key: "task_type", label: "Task", path: ["config", "task_type"], options: ["", "classification", "generation"], when: isHf, words: ["task_type"] },
  { key: "input_size", label: "Input size", path: ["config", "input_size"], number: true, value: "64", when: (v) => isTrain(v) && !isHf(v) && v.architecture === "custom", words: ["input_size"] },
  { key: "output_size", label: "Output size", path: ["config", "output_size"], number: true, value: "10", when: (v) => isTrain(v) && !isHf(v) && v.architecture === "custom", words: ["output_size"] },
  { key: "hidden_layers", label: "Hidden layers", path: ["config", "hidden_layers"], list: true, value: "128, 64", hint: "comma-separated widths", when: (v) => isTrain(v) && !isHf(v) && v.architecture === "custom", words: ["hidden_layers"] },
  { key: "num_classes", label: "Classes", path: ["config", "num_classes"], number: true, when: (v) => isTune(v) || isHf(v) || v.architecture === "resnet", hint: "a fine-tune's new head (empty: the parent's)", words: ["num_classes"] },
  { key: "freeze_layers", label: "Freeze layers", path: ["config", "freeze_layers"], options: ["", "true", "false"], bool: true, when: (v) => isTune(v) && !isHf(v), words: ["freeze_layers"] },
  { key: "lora", label: "LoRA adapters", path: ["config", "lora", "enabled"], options: ["", "true"], bool: true, when: (v) => isTune(v) && isHf(v), words: ["lora.enabled", "lora"] },
  { key: "lora_r", label: "LoRA rank r", path: ["config", "lora", "r"], number: true, value: "8", when: withLora, words: ["lora.r"] },
  { key: "lora_alpha", label: "LoRA alpha", path: ["config", "lora", "alpha"], number: true, value: "16", when: withLora, words: ["lora.alpha"] },
  { key: "lora_dropout", label: "LoRA dropout", path: ["config", "lora", "dropout"], number: true, value: "0.05", when: withLora, words: ["lora.dropout"] },
  { key: "lora_target_modules", label: "LoRA target modules", path: ["config", "lora", "target_modules"], list: "text", value: "q_proj, v_proj", hint: "comma-separated module names", when: withLora, words: ["lora.target_modules", "target_modules"] },
  { key: "epochs", label: "Epochs", path: ["config", "epochs"], number: true, value: "5", words: ["epochs"] },
  { key: "batch_size", label: "Batch size", path: ["config", "batch_size"], number: true, value: "32", words: ["batch_size"] },
  { key: "learning_rate", label: "Learning rate", path: ["config", "learning_rate"], number: true, value: "0.001", words: ["learning_rate"] },
  { key: "data_source", label: "Data", path: ["config", "data", "source"], options: ["digits", "synthetic", ""], words: ["data.source", "source", "data"] },
  { key: "register_as", label: "Register as (model name)", path: ["register_as"], hint: "the model becomes this name's next version", words: ["register_as"] },
  { key: "priority", label: "Priority", path: ["priority"], options: ["", "low", "normal", "high"], words: ["priority"] },
  { key: "gpus", label: "GPUs", path: ["resources", "gpus"], number: true, hint: "empty: none needed", words: ["resources.gpus", "gpus"] },
  { key: "min_gpu_memory_gib", label: "Min GPU memory (GiB)", path: ["resources", "min_gpu_memory_gib"], number: true, words: ["resources.min_gpu_memory_gib", "min_gpu_memory_gib"] },
  { key: "allow_cpu", label: "Allow CPU", path: ["resources", "allow_cpu"], options: ["", "true", "false"], bool: true, words: ["resources.allow_cpu", "allow_cpu"] },
  { key: "extra", label: "More config (JSON object, merged into config)", path: null, json: true, wide: true, value: "", words: [] },
];

// The form's current choices, which decide the fields that apply.
const choices = (form) => Object.fromEntries(["type", "framework", "model_source", "architecture", "lora"].map((k) => [k, form.elements[k].value]));
const applies = (f, v) => !f.when || f.when(v);

function valueOf(f, raw) {
  if (f.bool) return raw === "true";
  if (f.list === "text") return raw.split(",").map((x) => x.trim()).filter(Boolean);
  if (f.list) return raw.split(",").map((x) => x.trim()).filter(Boolean).map(Number);
  if (f.number && !Number.isNaN(Number(raw))) return Number(raw);
  return raw; // a number that is not one: the validator says what is wrong
}

function buildJob(form) {
  const job = {};
  const problems = {};
  const v = choices(form);
  for (const f of FIELDS) {
    const raw = form.elements[f.key].value.trim();
    if (raw === "" || !applies(f, v)) continue;
    if (f.json) {
      try {
        const extra = JSON.parse(raw);
        if (typeof extra !== "object" || Array.isArray(extra) || extra === null) throw new Error("not an object");
        job.config = { ...(job.config || {}), ...extra };
      } catch (e) { problems[f.key] = `not a JSON object (${e.message})`; }
      continue;
    }
    let at = job;
    f.path.slice(0, -1).forEach((p) => { at = at[p] = at[p] || {}; });
    at[f.path[f.path.length - 1]] = valueOf(f, raw);
  }
  return { job, problems };
}

// The field a validator message is about: the earliest name or dotted path it mentions
// (``config.lora.r: ...``, ``resources.gpus: ...``), the longest where two start together.
function fieldFor(message, form) {
  const text = message.toLowerCase();
  const v = choices(form);
  let best = null;
  for (const f of FIELDS) {
    if (!applies(f, v)) continue; // not on the form now: the message stays a general one
    for (const word of f.words) {
      const at = text.search(new RegExp(`(^|[^a-z_.])(config\\.)?${word.replaceAll(".", "\\.")}([^a-z_]|$)`));
      if (at >= 0 && (best === null || at < best.at || (at === best.at && word.length > best.len))) best = { f, at, len: word.length };
    }
  }
  return best ? best.f.key : null;
}

// ``query`` may fill fields in (the compare page's fine-tune: type, framework, model_id, name).
function submitView(query) {
  const form = el("form", { class: "job", id: "submit-form", novalidate: true });
  for (const f of FIELDS) {
    const given = query.get(f.key);
    const input = f.options
      ? el("select", { name: f.key, id: `f-${f.key}` }, f.options.map((o) => el("option", { value: o, selected: given === o }, o || "(none)")))
      : f.json ? el("textarea", { name: f.key, id: `f-${f.key}`, placeholder: '{"optimizer": "adamw"}' }, given ?? "")
        : el("input", { name: f.key, id: `f-${f.key}`, value: given ?? f.value ?? "", inputmode: f.number ? "decimal" : null });
    form.append(el("div", { class: `field${f.wide ? " wide" : ""}`, "data-field": f.key },
      el("label", { for: `f-${f.key}` }, f.label), input,
      f.hint ? el("span", { class: "hint" }, f.hint) : null,
      el("span", { class: "field-error", id: `e-${f.key}` })));
  }
  const shown = () => {
    const v = choices(form);
    for (const f of FIELDS) form.querySelector(`[data-field="${f.key}"]`).hidden = !applies(f, v);
  };
  const verdict = el("div", { class: "verdict", id: "verdict", hidden: true });
  const general = el("ul", { class: "messages", id: "general-errors" });
  const preview = el("pre", { class: "json", id: "job-preview" });
  const send = el("button", { type: "button", id: "submit-button", disabled: true }, "Submit job");
  $view.replaceChildren(el("h1", {}, "Submit a job"),
    el("div", { class: "sub" }, "Checked by the validator as you type (POST /api/jobs/validate); each error shows beside its field."),
    el("div", { class: "row" }, el("div", { class: "card" }, form, verdict, general, send),
      el("div", { class: "card" }, el("h2", {}, "The job as it will be sent"), preview)));
  let seq = 0;
  let timer = null;
  const check = async () => {
    const mine = ++seq;
    const { job, problems } = buildJob(form);
    preview.textContent = JSON.stringify(job, null, 2);
    const r = await api("/api/jobs/validate", { method: "POST", body: job });
    if (mine !== seq) return; // a later keystroke's answer wins
    showVerdict(form, verdict, general, send, r, problems);
  };
  form.addEventListener("input", () => { shown(); clearTimeout(timer); timer = setTimeout(check, 250); });
  send.addEventListener("click", async () => {
    const r = await api("/api/jobs", { method: "POST", body: buildJob(form).job });
    if (r.status === 202) location.hash = `#/jobs/${encodeURIComponent(r.body.job_id)}`;
    else showVerdict(form, verdict, general, send, { ok: true, body: { valid: false, errors: r.body?.errors || [r.body?.detail || `HTTP ${r.status}`], warnings: [] } }, {});
  });
  shown();
  check();
  return () => clearTimeout(timer);
}

function showVerdict(form, verdict, general, send, r, problems) {
  for (const box of form.querySelectorAll(".field")) {
    box.classList.remove("invalid");
    box.querySelector(".field-error").textContent = "";
  }
  const errors = r.ok ? r.body.errors : [r.body?.detail || `HTTP ${r.status}`];
  const loose = [];
  const mark = (key, message) => {
    const box = form.querySelector(`[data-field="${key}"]`);
    box.classList.add("invalid");
    const slot = box.querySelector(".field-error");
    slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
  };
  Object.entries(problems).forEach(([key, message]) => mark(key, message));
  for (const message of errors) {
    const key = fieldFor(message, form);
    if (key) mark(key, message); else loose.push(message);
  }
  general.replaceChildren(...loose.map((m) => el("li", { class: "error" }, m)),
    ...(r.body?.warnings || []).map((w) => el("li", { class: "warning" }, w)));
  const valid = r.ok && r.body.valid && !Object.keys(problems).length;
  verdict.hidden = false;
  verdict.className = `verdict ${valid ? "valid" : "invalid"}`;
  verdict.textContent = valid ? "Valid: the validator would accept this job." : `${errors.length + Object.keys(problems).length} problem(s) to fix.`;
  send.disabled = !valid;
}

// ---- routing -----------------------------------------------------------------------------

// #/PAGE/ID?QUERY: the page, an id, and the query (compare's runs, the submit form's fields).
async function route() {
  stopView();
  notice("");
  const [path, search] = (location.hash || "#/jobs").slice(1).split("?");
  const [, page, id] = path.split("/").map(decodeURIComponent);
  const query = new URLSearchParams(search || "");
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === (page || "jobs")));
  if (page === "jobs" && id) stopView = jobView(id);
  else if (page === "models" && id) stopView = await modelView(id);
  else if (page === "models") stopView = modelsView();
  else if (page === "submit") stopView = submitView(query);
  else if (page === "compare") stopView = await compareView(query);
  else if (page === "queue") stopView = queueView();
  else if (page === "sweeps" && id) stopView = sweepView(id);
  else if (page === "sweeps") stopView = sweepsView();
  else stopView = jobsView();
}

const tokenInput = document.getElementById("token");
tokenInput.value = localStorage.getItem(TOKEN_KEY) || "";
tokenInput.addEventListener("change", () => {
  const token = tokenInput.value.trim();
  if (token) localStorage.setItem(TOKEN_KEY, token); else localStorage.removeItem(TOKEN_KEY);
  route();
});
window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route); // once the pages' scripts after this one ran
