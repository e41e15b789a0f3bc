// The demo page: plain JavaScript over the service's own REST API (no build step, no CDN).
"use strict";

const $ = (id) => document.getElementById(id);
// Typed endpoints by model name (docs/api.md): path and the field that holds the items.
const TEXT_ENDPOINTS = {
  sentiment: ["/v1/sentiment:predict", "texts"],
  spam: ["/v1/spam:predict", "messages"],
};
const TABULAR_ENDPOINTS = { churn: ["/v1/churn:predict", "customers"], movie_profit: ["/v1/movies:predict", "movies"] };
const TEXT_EXAMPLES = {
  sentiment: "Me encantó el producto, llegó rápido y funciona perfecto.\nThe food was cold and the waiter was rude.",
  spam: "WINNER!! You have been selected to receive a £900 prize. Call 09061701461 to claim.\nAre we still meeting for lunch tomorrow at 1?",
};

const state = { models: [], model: null, metadata: null, file: null, drawn: false };

// ---- API ----------------------------------------------------------------------------------
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = $("api-key").value.trim();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  const reply = await fetch(path, { ...options, headers });
  const type = reply.headers.get("content-type") || "";
  const body = type.includes("json") ? await reply.json() : await reply.text();
  if (!reply.ok) {
    const detail = body && (body.detail || body.error) ? (body.detail || body.error) : reply.statusText;
    throw new Error(`${reply.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return body;
}

function postJson(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

function showError(error) {
  $("error").hidden = false;
  $("error").textContent = String(error.message || error);
}

function clearResult() {
  $("error").hidden = true;
  $("result").replaceChildren();
  $("chart").hidden = true;
}

// ---- models -------------------------------------------------------------------------------
async function loadModels() {
  try {
    const { models } = await api("/v1/models");
    state.models = models.filter((m) => m.ready && m.task);
  } catch (error) {
    showError(error);
    return;
  }
  const select = $("model");
  select.replaceChildren(...state.models.map((m) => new Option(`${m.name} (${m.task.replace("_", " ")})`, m.name)));
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && state.models.some((m) => m.name === wanted)) select.value = wanted;
  await chooseModel();
}

async function chooseModel() {
  clearResult();
  const model = state.models.find((m) => m.name === $("model").value);
  state.model = model;
  state.metadata = await api(`/v1/models/${encodeURIComponent(model.name)}/metadata`);
  $("model-info").textContent = `version ${model.default_version}` + (model.labels ? `, classes: ${model.labels.join(", ")}` : "");
  for (const form of document.querySelectorAll("form.task")) form.hidden = true;
  const show = { image_classification: showImage, text_classification: showText, tabular_classification: showTabular, forecasting: showSales }[model.task];
  if (show) await show(model);
  loadReport(model);
}

// ---- images -------------------------------------------------------------------------------
function drawable(meta) {
  const image = meta.image || {};
  return image.channels === 1 && (image.height || 0) <= 64;  // digits, glyphs: draw them
}

function showImage() {
  $("image-form").hidden = false;
  const canDraw = drawable(state.metadata);
  $("draw-box").hidden = !canDraw;
  state.file = null;
  $("preview").hidden = true;
  resetCanvas();
}

function resetCanvas() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const light = (state.metadata.image || {}).background === "light";
  ctx.fillStyle = light ? "#ffffff" : "#000000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = light ? "#000000" : "#ffffff";
  ctx.lineWidth = 22;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  state.drawn = false;
}

function setupCanvas() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  let drawing = false;
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * (canvas.width / box.width), (event.clientY - box.top) * (canvas.height / box.height)];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    ctx.beginPath();
    ctx.moveTo(...point(event));
    ctx.lineTo(...point(event));
    ctx.stroke();
    state.drawn = true;
    state.file = null;
    $("preview").hidden = true;
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    ctx.lineTo(...point(event));
    ctx.stroke();
  });
  const stop = () => { drawing = false; };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointerleave", stop);
  $("clear").addEventListener("click", resetCanvas);
}

function setFile(file) {
  if (!file) return;
  state.file = file;
  state.drawn = false;
  const preview = $("preview");
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
}

function setupDrop() {
  const zone = $("drop-zone");
  $("file").addEventListener("change", (event) => setFile(event.target.files[0]));
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("file").click(); }
  });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    setFile(event.dataTransfer.files[0]);
  });
}

// The chosen picture, or else the drawing, as the upload form; null (and an error shown) if none.
async function imageForm() {
  const blob = state.file || (state.drawn ? await new Promise((resolve) => $("canvas").toBlob(resolve, "image/png")) : null);
  if (!blob) {
    showError(new Error("draw something or choose a picture first"));
    return null;
  }
  const form = new FormData();
  form.append("files", blob, state.file ? state.file.name : "drawing.png");
  return form;
}

async function classifyImage(event) {
  event.preventDefault();
  clearResult();
  const form = await imageForm();
  if (!form) return;
  try {
    const reply = await api(`/v1/images/${encodeURIComponent(state.model.name)}:classify?top_k=5`, { method: "POST", body: form });
    const prediction = reply.predictions[0];
    answer(prediction.label, `probability ${(prediction.probability * 100).toFixed(1)} %`);
    bars(prediction.top_k.map((c) => [c.label, c.probability]));
  } catch (error) {
    showError(error);
  }
}

async function explainImage() {
  clearResult();
  const form = await imageForm();
  if (!form) return;
  try {
    const reply = await api(`/v1/images/${encodeURIComponent(state.model.name)}:explain`, { method: "POST", body: form });
    const item = reply.explanations[0];
    answer(item.label, `probability ${(item.probability * 100).toFixed(1)} %: the red areas drove this answer (Grad-CAM at ${item.gradcam.layer})`);
    const figures = document.createElement("div");
    figures.className = "figures";
    figures.append(figure(item.gradcam.png, `Grad-CAM of "${item.label}" over the input`, "gradcam"));
    for (const layer of item.activations.filter((a) => a.png)) {
      figures.append(figure(layer.png, `${layer.name}: ${layer.shape[2]} feature maps of ${layer.shape[0]}×${layer.shape[1]}`, `activations-${layer.name}`));
    }
    $("result").append(figures);
  } catch (error) {
    showError(error);
  }
}

function figure(pngBase64, caption, id) {
  const box = document.createElement("figure");
  const img = document.createElement("img");
  img.src = `data:image/png;base64,${pngBase64}`;
  img.alt = caption;
  img.id = id;
  const text = document.createElement("figcaption");
  text.textContent = caption;
  box.append(img, text);
  return box;
}

// ---- text ---------------------------------------------------------------------------------
function showText(model) {
  $("text-form").hidden = false;
  $("text").value = TEXT_EXAMPLES[model.name] || "";
}

// [endpoint, field, texts] of the text box (one text a line); null (and an error shown) if none.
function textRequest() {
  const [path, field] = TEXT_ENDPOINTS[state.model.name] || [];
  if (!path) return showError(new Error(`no typed endpoint for ${state.model.name}`));
  const texts = $("text").value.split("\n").map((t) => t.trim()).filter(Boolean);
  if (!texts.length) return showError(new Error("type at least one text"));
  return [path, field, texts];
}

async function predictText(event) {
  event.preventDefault();
  clearResult();
  const request = textRequest();
  if (!request) return;
  const [path, field, texts] = request;
  try {
    const reply = await postJson(path, { [field]: texts });
    binaryAnswers(texts, reply.predictions, state.model.labels);
  } catch (error) {
    showError(error);
  }
}

async function explainText() {
  clearResult();
  const request = textRequest();
  if (!request) return;
  const [path, field, texts] = request;
  try {
    const reply = await postJson(path.replace(":predict", ":explain"), { [field]: texts });
    for (const item of reply.explanations) {
      answer(item.label, `P(${reply.positive_class}) ${(item.score * 100).toFixed(1)} %; green words push towards "${reply.positive_class}", red ones away`);
      const line = document.createElement("p");
      line.className = "tokens";
      // Shaded by log-odds: a confident model moves P by thousandths, its log-odds by units.
      const weight = (t) => t.log_odds_contribution ?? t.contribution;
      const scale = Math.max(...item.tokens.map((t) => Math.abs(weight(t))), 1e-6);
      for (const t of item.tokens) {
        const span = document.createElement("span");
        span.textContent = t.token;
        const strength = Math.abs(weight(t)) / scale;
        span.style.background = weight(t) >= 0 ? `rgba(45, 164, 78, ${strength * 0.7})` : `rgba(207, 34, 46, ${strength * 0.7})`;
        span.title = `${t.contribution >= 0 ? "+" : ""}${(t.contribution * 100).toFixed(1)} points, ${weight(t) >= 0 ? "+" : ""}${weight(t).toFixed(2)} log-odds`;
        line.append(span);
      }
      $("result").append(line);
      showLayers(item.activations);
    }
  } catch (error) {
    showError(error);
  }
}

// What the model holds inside for one item (text and tabular :explain, course exercise 7):
// a text bag as its strongest terms, other layers as a strip of one cell per unit.
function showLayers(layers) {
  if (!layers || !layers.length) return;
  const box = document.createElement("details");
  box.className = "layers";
  const summary = document.createElement("summary");
  summary.textContent = `Inside the model: ${layers.length} layers`;
  box.append(summary);
  for (const layer of layers) {
    const title = document.createElement("p");
    title.className = "muted";
    if (layer.kind === "bag") {
      title.textContent = `${layer.name}: ${layer.top_terms.length} strongest of ${layer.shape[0]} terms (TF-IDF weight)`;
      const list = document.createElement("p");
      list.className = "terms";
      list.id = `layer-${layer.name}`;
      const top = Math.max(...layer.top_terms.map((t) => t.value), 1e-6);
      for (const t of layer.top_terms) {
        const span = document.createElement("span");
        span.textContent = t.term;
        span.title = t.value.toFixed(3);
        span.style.background = `rgba(9, 105, 218, ${(t.value / top) * 0.6})`;
        list.append(span);
      }
      box.append(title, list);
    } else {
      title.textContent = `${layer.name}: ${layer.shape[0]} ${layer.kind === "features" ? "encoded features" : "units"}`;
      box.append(title, strip(layer.values, `${layer.name}: ${layer.values.filter((v) => v !== 0).length} of ${layer.values.length} non-zero`, `layer-${layer.name}`));
    }
  }
  $("result").append(box);
}

// One cell per value, darker for larger magnitude (blue positive, red negative).
function strip(values, label, id) {
  const canvas = document.createElement("canvas");
  const cell = Math.max(2, Math.min(12, Math.floor(600 / values.length)));
  canvas.width = cell * values.length;
  canvas.height = 16;
  canvas.id = id;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  const context = canvas.getContext("2d");
  const top = Math.max(...values.map(Math.abs), 1e-6);
  values.forEach((v, i) => {
    const a = Math.abs(v) / top;
    context.fillStyle = v >= 0 ? `rgba(9, 105, 218, ${a})` : `rgba(207, 34, 46, ${a})`;
    context.fillRect(i * cell, 0, cell, 16);
  });
  return canvas;
}

function binaryAnswers(items, predictions, labels) {
  predictions.forEach((p, i) => {
    const row = document.createElement("div");
    row.className = "answer-row";
    const title = document.createElement("p");
    title.className = "answer";
    title.textContent = p.label;
    const what = document.createElement("p");
    what.className = "muted";
    what.textContent = items[i];
    row.append(title, what);
    $("result").append(row);
    bars([[`P(${labels ? labels[1] : "1"})`, p.score]]);
  });
}

// ---- tabular ------------------------------------------------------------------------------
function showTabular(model) {
  $("tabular-form").hidden = false;
  const fields = $("fields");
  fields.replaceChildren();
  const columns = state.metadata.columns || {};
  for (const [name, spec] of Object.entries(columns)) {
    const wrap = document.createElement("div");
    const label = document.createElement("label");
    label.htmlFor = `col-${name}`;
    label.textContent = name;
    let input;
    if (spec.type === "categorical" && spec.values && !spec.open) {
      input = document.createElement("select");
      for (const value of spec.values) input.append(new Option(value, value));
    } else {
      input = document.createElement("input");
      input.type = spec.type === "numeric" ? "number" : "text";
      if (spec.type === "numeric") input.step = "any";
      if (spec.values) {
        const list = document.createElement("datalist");
        list.id = `values-${name}`;
        for (const value of spec.values) list.append(new Option(value));
        wrap.append(list);
        input.setAttribute("list", list.id);
      }
    }
    input.id = `col-${name}`;
    input.name = name;
    input.dataset.kind = spec.type;
    if (spec.default !== undefined && spec.default !== null) input.value = spec.default;
    wrap.prepend(label, input);
    fields.append(wrap);
  }
}

function tabularRow() {
  const row = {};
  for (const input of $("fields").querySelectorAll("input, select")) {
    if (input.value === "") continue;
    row[input.name] = input.dataset.kind === "numeric" ? Number(input.value) : input.value;
  }
  return row;
}

async function predictTabular(event) {
  event.preventDefault();
  clearResult();
  const [path, field] = TABULAR_ENDPOINTS[state.model.name] || [];
  if (!path) return showError(new Error(`no typed endpoint for ${state.model.name}`));
  try {
    const reply = await postJson(path, { [field]: [tabularRow()] });
    binaryAnswers([`${state.model.name}: one ${field.replace(/s$/, "")}`], reply.predictions, state.model.labels);
  } catch (error) {
    showError(error);
  }
}

async function explainTabular() {
  clearResult();
  const [path, field] = TABULAR_ENDPOINTS[state.model.name] || [];
  if (!path) return showError(new Error(`no typed endpoint for ${state.model.name}`));
  try {
    const reply = await postJson(path.replace(":predict", ":explain"), { [field]: [tabularRow()] });
    const item = reply.explanations[0];
    answer(item.label, `P(${reply.positive_class}) ${(item.score * 100).toFixed(1)} %; each column against its usual value (points of probability)`);
    for (const f of item.features.slice(0, 12)) {
      signedBar(`${f.feature} = ${f.value}`, f.contribution);
    }
    showLayers(item.activations);
  } catch (error) {
    showError(error);
  }
}

function signedBar(label, value) {
  const row = document.createElement("div");
  row.className = "bar";
  row.setAttribute("role", "img");
  row.setAttribute("aria-label", `${label}: ${(value * 100).toFixed(1)} points`);
  const name = document.createElement("span");
  name.textContent = label;
  const track = document.createElement("div");
  track.className = "track";
  const fill = document.createElement("div");
  fill.className = value >= 0 ? "fill" : "fill negative";
  fill.style.width = `${Math.min(1, Math.abs(value)) * 100}%`;
  track.append(fill);
  const number = document.createElement("span");
  number.textContent = `${value >= 0 ? "+" : ""}${(value * 100).toFixed(1)}`;
  row.append(name, track, number);
  $("result").append(row);
}

// ---- sales --------------------------------------------------------------------------------
async function showSales() {
  $("sales-form").hidden = false;
  if ($("history").value) return;
  try {  // the API's own example history (OpenAPI schema)
    const openapi = await api("/openapi.json");
    const history = openapi.components.schemas.ForecastRequest.properties.history.examples[0];
    $("history").value = history.join(", ");
  } catch (error) { /* leave it empty */ }
}

async function forecast(event) {
  event.preventDefault();
  clearResult();
  const history = $("history").value.split(/[\s,;]+/).filter(Boolean).map(Number);
  if (history.some(Number.isNaN)) return showError(new Error("the history must be numbers"));
  try {
    const reply = await postJson("/v1/sales:forecast", { history, horizon: Number($("horizon").value) });
    answer(`${reply.forecast.length} months forecast`, reply.forecast.map((v) => v.toFixed(1)).join(", "));
    chart(history, reply.forecast);
  } catch (error) {
    showError(error);
  }
}

function chart(history, forecastValues) {
  const canvas = $("chart");
  canvas.hidden = false;
  const ctx = canvas.getContext("2d");
  const all = history.concat(forecastValues);
  const [low, high] = [Math.min(...all), Math.max(...all)];
  const x = (i) => 40 + (i * (canvas.width - 60)) / Math.max(all.length - 1, 1);
  const y = (v) => canvas.height - 30 - ((v - low) / (high - low || 1)) * (canvas.height - 50);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "12px system-ui";
  ctx.fillStyle = "#5b6475";
  ctx.fillText(high.toFixed(0), 2, y(high) + 4);
  ctx.fillText(low.toFixed(0), 2, y(low) + 4);
  const line = (values, offset, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    values.forEach((v, i) => (i ? ctx.lineTo(x(i + offset), y(v)) : ctx.moveTo(x(i + offset), y(v))));
    ctx.stroke();
  };
  line(history, 0, "#1d2433");
  line([history[history.length - 1], ...forecastValues], history.length - 1, "#1f6feb");
  ctx.fillStyle = "#1d2433";
  ctx.fillText("history", 44, 14);
  ctx.fillStyle = "#1f6feb";
  ctx.fillText("forecast", 110, 14);
}

// ---- results ------------------------------------------------------------------------------
function answer(text, detail) {
  const title = document.createElement("p");
  title.className = "answer";
  title.textContent = text;
  const more = document.createElement("p");
  more.className = "muted";
  more.textContent = detail;
  $("result").append(title, more);
}

function bars(pairs) {
  for (const [label, value] of pairs) {
    const row = document.createElement("div");
    row.className = "bar";
    row.setAttribute("role", "img");
    row.setAttribute("aria-label", `${label}: ${(value * 100).toFixed(1)} %`);
    const name = document.createElement("span");
    name.textContent = label;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${Math.max(0, Math.min(1, value)) * 100}%`;
    track.append(fill);
    const number = document.createElement("span");
    number.textContent = `${(value * 100).toFixed(1)} %`;
    row.append(name, track, number);
    $("result").append(row);
  }
}

// ---- report -------------------------------------------------------------------------------
async function loadReport(model) {
  const box = $("report");
  box.replaceChildren();
  let report;
  try {
    report = await api(`/v1/models/${encodeURIComponent(model.name)}/report`);
  } catch (error) {
    box.textContent = `No report: ${error.message}`;
    return;
  }
  const splits = report.measured_on.splits || {};
  const note = document.createElement("p");
  note.className = "muted";
  note.textContent = `Version ${report.version}, measured on ${splits.test ?? "?"} held-out test items (train ${splits.train ?? "?"}, validation ${splits.validation ?? "?"}).`;
  const table = document.createElement("table");
  table.id = "report-metrics";
  const metrics = Object.entries(report.metrics).concat(Object.entries(report.other_metrics || {}).filter(([, v]) => typeof v === "number"));
  for (const [name, value] of metrics) {
    const row = table.insertRow();
    row.insertCell().textContent = name.replaceAll("_", " ");
    row.insertCell().textContent = typeof value === "number" ? value.toFixed(4) : String(value);
    const interval = (report.intervals || {})[name];
    if (interval) {
      // The test split's own sampling error: where another split of its size may land.
      const cell = row.insertCell();
      cell.className = "muted";
      cell.textContent = `95 % interval ${interval[0].toFixed(4)} to ${interval[1].toFixed(4)}`;
    }
  }
  const spread = document.createElement("p");
  if (report.spread) {
    // The same procedure on other held-out data: how far the test split's figure may be off.
    const { metric, value, std, values, method } = report.spread;
    spread.id = "report-spread";
    spread.textContent = `On other held-out data: ${metric.replaceAll("_", " ")} ${value.toFixed(3)} ± ${std.toFixed(3)} (${Math.min(...values).toFixed(3)} to ${Math.max(...values).toFixed(3)}), ${method}.`;
  }
  const plots = document.createElement("div");
  plots.className = "plots";
  for (const [key, url] of Object.entries(report.plots)) {
    const img = document.createElement("img");
    img.src = url;
    img.alt = `${model.name}: ${key.replaceAll("_", " ")} plot`;
    img.loading = "lazy";
    plots.append(img);
  }
  box.append(note, table, spread, plots);
}

// ---- start --------------------------------------------------------------------------------
window.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem("apiKey") || "";
  $("api-key").addEventListener("change", () => { sessionStorage.setItem("apiKey", $("api-key").value); loadModels(); });
  $("model").addEventListener("change", () => chooseModel().catch(showError));
  $("image-form").addEventListener("submit", classifyImage);
  $("text-form").addEventListener("submit", predictText);
  $("tabular-form").addEventListener("submit", predictTabular);
  $("sales-form").addEventListener("submit", forecast);
  const explainers = { image: explainImage, text: explainText, tabular: explainTabular };
  for (const button of document.querySelectorAll("button.explain")) {
    button.addEventListener("click", () => explainers[button.dataset.form]());
  }
  setupCanvas();
  setupDrop();
  loadModels();
});
