// The compare page (#/compare?jobs=A,B | ?sweep=S | ?model=NAME | ?tag=T): the chosen runs'
// curves overlaid (one chart per series, one line per run, by step or by epoch), a sortable
// table of what differs and how each run ended, a sweep's parallel coordinates, and from the
// table: an alias on a run's model, a fine-tune from it. Uses app.js's helpers (el, api, num).
"use strict";

const CHOOSERS = ["jobs", "sweep", "model", "tag"];
const CHART_HEIGHT = 220;
// Curves of many runs come thinned harder: about this many points per chart in all.
const POINTS_PER_CHART = 20000;
const curvePoints = (runs) => Math.max(20, Math.min(200, Math.floor(POINTS_PER_CHART / Math.max(1, runs))));
const runColor = (i, n) => (n <= CHART_COLORS.length ? CHART_COLORS[i] : `hsl(${Math.round((i * 360) / n)} 70% 42%)`);
const shortId = (id) => (id.length > 28 ? `${id.slice(0, 12)}…${id.slice(-12)}` : id);
const paramText = (v) => (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));

async function compareView(query) {
  const chosen = new URLSearchParams();
  for (const key of CHOOSERS) if (query.get(key)) chosen.set(key, query.get(key));
  if (![...chosen.keys()].length) return compareChooser();
  $view.replaceChildren(el("h1", {}, "Compare runs"), el("div", { class: "sub" }, "loading..."));
  const c = await api(`/api/compare?${chosen}`);
  if (!c.ok) {
    $view.replaceChildren(el("h1", {}, "Compare runs"), el("div", { class: "notice" }, c.body?.detail || `HTTP ${c.status}`));
    return () => {};
  }
  const found = c.body;
  const points = curvePoints(found.runs.length);
  const s = await api(`/api/compare/series?${chosen}&points=${points}`);
  const curves = s.ok ? s.body.runs : [];
  const state = { found, curves, x: query.get("x") === "epoch" ? "epoch" : "step" };
  window.sparkCompare = { found, curves, points, charts: {}, table: null, parallel: null };
  const what = found.sweep ? `sweep ${found.sweep.name || found.sweep.sweep_id}` : [...chosen].map(([k, v]) => `${k} ${v}`).join(", ");
  const charts = el("div", { class: "charts", id: "compare-charts" });
  const toggle = el("span", { class: "toggle", id: "x-toggle" }, ["step", "epoch"].map((x) =>
    el("button", { type: "button", class: x === state.x ? "" : "secondary", "data-x": x, onclick: () => {
      state.x = x;
      toggle.querySelectorAll("button").forEach((b) => (b.className = b.dataset.x === x ? "" : "secondary"));
      drawCompareCharts(charts, state);
    } }, `by ${x}`)));
  const parallel = el("div", { class: "card", id: "compare-parallel", hidden: !found.sweep });
  const table = el("div", { class: "card", id: "compare-table" });
  $view.replaceChildren(el("h1", {}, "Compare runs"),
    el("div", { class: "sub" }, `${found.runs.length} runs (${what}); best by ${found.metric}: `,
      found.best ? link(`#/jobs/${encodeURIComponent(found.best)}`, found.best) : "none yet",
      `; curves thinned to about ${points} points each`),
    el("div", { class: "card" }, el("h2", {}, "Curves ", toggle), charts), parallel, table);
  drawCompareCharts(charts, state);
  if (found.sweep) drawParallel(parallel, found);
  compareTable(table, found);
  requestAnimationFrame(() => { window.sparkCompare.drawn_ms = performance.now(); }); // bench/compare_bench.py
  return () => {};
}

function compareChooser() {
  const input = el("input", { id: "compare-jobs", placeholder: "job ids, comma-separated", size: 60 });
  const go = (key, value) => { if (value.trim()) location.hash = `#/compare?${key}=${encodeURIComponent(value.trim())}`; };
  $view.replaceChildren(el("h1", {}, "Compare runs"),
    el("div", { class: "sub" }, "Choose runs: job ids, or open a sweep's page and compare its trials."),
    el("div", { class: "card" }, input, " ", el("button", { type: "button", onclick: () => go("jobs", input.value) }, "Compare")));
  return () => {};
}

// One run's points of one series on the chosen x: by step as they come; by epoch, the last
// point of each epoch (a step series has many points per epoch).
function runCurve(series, x) {
  if (x === "step") return [series.steps, series.values];
  const byEpoch = new Map();
  series.epochs.forEach((e, i) => { if (e !== null && e !== undefined) byEpoch.set(e, series.values[i]); });
  const epochs = [...byEpoch.keys()].sort((a, b) => a - b);
  return [epochs, epochs.map((e) => byEpoch.get(e))];
}

function drawCompareCharts(container, state) {
  for (const entry of Object.values(window.sparkCompare.charts)) entry.plot.destroy();
  window.sparkCompare.charts = {};
  container.replaceChildren();
  const names = [...new Set(state.curves.flatMap((r) => Object.keys(r.series)))]
    .sort((a, b) => rank(a.split("/")[0]) - rank(b.split("/")[0]) || a.localeCompare(b));
  if (!names.length) container.append(el("div", { class: "empty" }, "None of these runs has reported metrics yet."));
  const many = state.curves.length > 12;
  for (const name of names) {
    const runs = state.curves.filter((r) => r.series[name]);
    const lines = runs.map((r) => runCurve(r.series[name], state.x));
    const box = el("div", { class: "chart card", "data-series": name, "data-runs": runs.length }, el("h3", {}, name));
    container.append(box);
    const width = () => Math.max(320, box.clientWidth - 36);
    const plot = new uPlot({
      width: width(), height: CHART_HEIGHT,
      scales: { x: { time: false } },
      legend: { show: !many },
      cursor: { points: { show: !many } },
      axes: [{ label: state.x }, { size: 64, values: (u, ticks) => ticks.map(tick) }],
      series: [{ label: state.x }, ...runs.map((r, i) => ({
        label: r.job_id, stroke: runColor(state.curves.indexOf(r), state.curves.length),
        width: many ? 1 : 2, spanGaps: true, points: { show: false },
      }))],
    }, uPlot.join(lines), box);
    new ResizeObserver(() => plot.setSize({ width: width(), height: CHART_HEIGHT })).observe(box);
    window.sparkCompare.charts[name] = { plot, runs: runs.map((r) => r.job_id), x: state.x };
  }
}

// ---- the table ---------------------------------------------------------------------------

function compareColumns(found) {
  const metric = (name, end) => ({ head: `${name} ${end}`, num: true, get: (r) => r.metrics[name]?.[end] });
  return [
    { head: "Run", get: (r) => r.job_id, cell: (r) => el("td", { class: "mono nowrap" }, r.job_id === found.best ? "★ " : "", link(`#/jobs/${encodeURIComponent(r.job_id)}`, shortId(r.job_id))) },
    { head: "Status", get: (r) => r.status || "", cell: (r) => el("td", {}, r.status ? status(r.status) : "unknown") },
    ...found.differing.map((path) => ({ head: path, param: true, get: (r) => r.params[path], text: (r) => paramText(r.params[path]) })),
    ...found.series.flatMap((name) => [metric(name, "final"), metric(name, "best")]),
    { head: "Duration", num: true, get: (r) => r.duration_s, text: (r) => (typeof r.duration_s === "number" ? `${r.duration_s.toFixed(1)} s` : "") },
    { head: "Data sha256", get: (r) => r.data?.sha256 || "", text: (r) => (r.data?.sha256 || "").slice(0, 12) },
  ];
}

// Numbers before text, missing values last, whichever way the column is sorted.
function compareValues(a, b) {
  const missing = (v) => v === null || v === undefined || v === "";
  if (missing(a) || missing(b)) return missing(a) - missing(b);
  if (typeof a === "number" && typeof b === "number") return a - b;
  return paramText(a).localeCompare(paramText(b), undefined, { numeric: true });
}

function compareTable(card, found) {
  const columns = compareColumns(found);
  const sort = { column: columns.findIndex((c) => c.head === `${found.metric} best`), desc: false };
  if (sort.column < 0) sort.column = 0;
  if (found.metric && !lowerIsBetter(found, found.metric)) sort.desc = true;
  const action = el("div", { class: "action", id: "compare-action" });
  const thead = el("thead");
  const tbody = el("tbody");
  const draw = () => {
    const c = columns[sort.column];
    const order = found.runs.slice().sort((a, b) => {
      const by = compareValues(c.get(a), c.get(b));
      const missing = [c.get(a), c.get(b)].some((v) => v === null || v === undefined || v === "");
      return (sort.desc && !missing ? -by : by) || found.runs.indexOf(a) - found.runs.indexOf(b);
    });
    thead.replaceChildren(el("tr", {}, columns.map((col, i) => el("th", {
      class: `sortable${col.num ? " num" : ""}`, "data-column": col.head,
      "data-sort": i === sort.column ? (sort.desc ? "desc" : "asc") : null,
      onclick: () => { sort.desc = sort.column === i ? !sort.desc : false; sort.column = i; draw(); },
    }, col.head, i === sort.column ? (sort.desc ? " ▼" : " ▲") : "")), el("th", {}, "")));
    tbody.replaceChildren(...order.map((r) => el("tr", { "data-job-id": r.job_id, class: r.job_id === found.best ? "best" : null },
      columns.map((col) => (col.cell ? col.cell(r) : el("td", { class: col.num ? "num" : col.param ? "mono" : "" },
        col.text ? col.text(r) : num(col.get(r))))),
      el("td", { class: "actions" }, r.model_id
        ? [el("button", { type: "button", class: "secondary small", "data-action": "alias", onclick: () => aliasForm(action, r) }, "Alias…"),
           el("button", { type: "button", class: "secondary small", "data-action": "finetune", onclick: () => fineTune(action, r) }, "Fine-tune")]
        : ""))));
    window.sparkCompare.table = { columns: columns.map((col) => col.head), sort: { ...sort, head: columns[sort.column].head }, order: order.map((r) => r.job_id) };
  };
  card.replaceChildren(el("h2", {}, "Runs"),
    el("div", { class: "sub" }, found.differing.length ? `Parameters that differ: ${found.differing.join(", ")}. Click a column to sort.` : "No parameter differs between these runs."),
    action, el("div", { class: "scroll" }, el("table", { id: "compare-runs" }, thead, tbody)));
  draw();
}

// Which way a series is better, as the API says (contracts/series.py lower_is_better).
const lowerIsBetter = (found, name) => (found.better || {})[name] !== "higher";

async function modelOf(action, run) {
  const r = await api(`/api/models/${encodeURIComponent(run.model_id)}`);
  if (!r.ok) {
    action.replaceChildren(el("div", { class: "error" }, `model ${run.model_id}: ${r.body?.detail || `HTTP ${r.status}`}`));
    return null;
  }
  return r.body;
}

async function aliasForm(action, run) {
  const m = await modelOf(action, run);
  if (!m) return;
  if (!m.registered_name) {
    action.replaceChildren(el("div", { class: "error" }, `model ${m.model_id} is no version of a registered name: only named versions take an alias (train it with register_as).`));
    return;
  }
  const alias = el("input", { id: "alias-name", value: "champion", size: 16 });
  const said = el("span", { id: "alias-result" });
  const set = async () => {
    const path = `/api/registered-models/${encodeURIComponent(m.registered_name)}/aliases/${encodeURIComponent(alias.value.trim())}`;
    const r = await api(path, { method: "PUT", body: { version: m.version, reason: `best in a comparison (${run.job_id})` } });
    said.className = r.ok ? "ok" : "error";
    said.dataset.status = String(r.status);
    said.textContent = r.ok ? ` requested: ${r.body.name}@${r.body.alias} -> version ${r.body.version}; the registry shows it once it has folded the change`
      : ` refused (HTTP ${r.status}): ${typeof r.body?.detail === "string" ? r.body.detail : JSON.stringify(r.body?.detail || r.body)}`;
  };
  action.replaceChildren(el("span", {}, `Point an alias of ${m.registered_name} at version ${m.version} (${run.job_id}): `), alias, " ",
    el("button", { type: "button", id: "alias-set", onclick: set }, "Set alias"), said);
}

async function fineTune(action, run) {
  const m = await modelOf(action, run);
  if (!m) return;
  // The parent gives the model's shape (model_source "model_id"): those fields start empty;
  // the training settings keep the form's defaults.
  const fields = new URLSearchParams({ type: "finetune", framework: m.framework, model_source: "model_id",
    model_id: m.model_id, name: `fine-tune of ${m.name || m.model_id}`, input_size: "", output_size: "", hidden_layers: "" });
  location.hash = `#/submit?${fields}`;
}

// ---- parallel coordinates ----------------------------------------------------------------

// One axis per differing parameter, then the sweep's metric; numbers on a linear axis (a log
// one when they are positive and span 100x), anything else as evenly spaced categories.
function parallelAxes(found) {
  const runs = found.runs.filter((r) => r.metrics[found.metric]);
  const axes = [...found.differing.map((path) => ({ name: path, of: (r) => r.params[path] })),
    { name: found.metric, of: (r) => r.metrics[found.metric].final }];
  return { runs, axes: axes.map((a) => {
    const values = runs.map(a.of).filter((v) => v !== null && v !== undefined);
    if (values.length && values.every((v) => typeof v === "number")) {
      const min = Math.min(...values), max = Math.max(...values);
      const log = min > 0 && max / min >= 100;
      const t = (v) => (log ? Math.log10(v) : v);
      const span = t(max) - t(min) || 1;
      return { ...a, kind: log ? "log" : "linear", min, max, at: (v) => (typeof v === "number" ? (t(v) - t(min)) / span : null) };
    }
    const categories = [...new Set(values.map(paramText))].sort((x, y) => compareValues(x, y));
    const at = (v) => (v === null || v === undefined ? null : categories.length < 2 ? 0.5 : categories.indexOf(paramText(v)) / (categories.length - 1));
    return { ...a, kind: "category", categories, at };
  }) };
}

function drawParallel(card, found) {
  const { runs, axes } = parallelAxes(found);
  const canvas = el("canvas", { id: "parallel-canvas" });
  card.replaceChildren(el("h2", {}, `Parameters against ${found.metric}`),
    el("div", { class: "sub" }, `One line per run with ${found.metric}; the darker, the better; the best is red.`), canvas);
  const metric = axes[axes.length - 1];
  const lower = lowerIsBetter(found, found.metric);
  const goodness = (r) => { const f = metric.at(metric.of(r)); return lower ? 1 - f : f; };
  const lines = runs.map((r) => ({ job_id: r.job_id, values: axes.map((a) => a.of(r)), fractions: axes.map((a) => a.at(a.of(r))) }));
  window.sparkCompare.parallel = { axes: axes.map((a) => ({ name: a.name, kind: a.kind, min: a.min, max: a.max, categories: a.categories })), lines };
  const paint = () => {
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(360, card.clientWidth - 36), height = 260;
    canvas.width = width * dpr; canvas.height = height * dpr;
    canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
    const g = canvas.getContext("2d");
    g.scale(dpr, dpr);
    const pad = { left: 60, right: 60, top: 44, bottom: 26 };
    const x = (i) => pad.left + (axes.length < 2 ? 0 : (i * (width - pad.left - pad.right)) / (axes.length - 1));
    const y = (f) => pad.top + (1 - f) * (height - pad.top - pad.bottom);
    const isBest = (i) => (runs[i].job_id === found.best ? 1 : 0);
    const order = runs.map((r, i) => i).sort((a, b) => isBest(a) - isBest(b) || goodness(runs[a]) - goodness(runs[b]));
    for (const i of order) { // the best drawn last, on top
      const best = runs[i].job_id === found.best;
      g.strokeStyle = best ? "#dc2626" : `hsla(221, 83%, ${Math.round(80 - 50 * goodness(runs[i]))}%, 0.85)`;
      g.lineWidth = best ? 3 : 1.5;
      g.beginPath();
      let pen = false;
      lines[i].fractions.forEach((f, a) => {
        if (f === null) { pen = false; return; }
        if (pen) g.lineTo(x(a), y(f)); else g.moveTo(x(a), y(f));
        pen = true;
      });
      g.stroke();
    }
    g.fillStyle = "#1d2430"; g.strokeStyle = "#94a3b8"; g.lineWidth = 1;
    g.font = "12px system-ui, sans-serif"; g.textAlign = "center";
    axes.forEach((a, i) => {
      g.beginPath(); g.moveTo(x(i), y(1)); g.lineTo(x(i), y(0)); g.stroke();
      g.fillText(a.name + (a.kind === "log" ? " (log)" : ""), x(i), 14);
      const ends = a.kind === "category" ? [a.categories[0], a.categories[a.categories.length - 1]] : [tick(a.min), tick(a.max)];
      g.fillStyle = "#687387";
      g.fillText(ends[0] ?? "", x(i), height - 8);
      g.fillText(ends[1] ?? "", x(i), y(1) - 6);
      g.fillStyle = "#1d2430";
    });
  };
  paint();
  new ResizeObserver(paint).observe(card);
}
