// The dashboard: the desk's figures as cards and inline SVG charts (no chart library).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let token = sessionStorage.getItem("pilothouse.console.token");

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const COLOURS = ["#1f6feb", "#2f855a", "#b7791f", "#c53030", "#6b46c1", "#2c7a7b", "#718096"];

// Horizontal bars: [[label, value], ...].
function barChart(title, rows, format = (v) => String(v)) {
  const width = 420;
  const rowHeight = 26;
  const labelWidth = 150;
  const height = rows.length * rowHeight + 10;
  const max = Math.max(1, ...rows.map(([, v]) => v));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  rows.forEach(([label, value], i) => {
    const y = 5 + i * rowHeight;
    const w = ((width - labelWidth - 60) * value) / max;
    chart.append(
      svg("text", { x: 0, y: y + 16 }, label),
      svg("rect", { x: labelWidth, y: y + 3, width: Math.max(w, 1), height: rowHeight - 8, fill: COLOURS[i % COLOURS.length], rx: 3 }),
      svg("text", { x: labelWidth + w + 6, y: y + 16 }, format(value)),
    );
  });
  return chartCard(title, chart);
}

// A donut of parts: [[label, value], ...].
function donut(title, parts) {
  const total = parts.reduce((sum, [, v]) => sum + v, 0);
  const chart = svg("svg", { viewBox: "0 0 420 170", role: "img", "aria-label": title });
  const cx = 80, cy = 85, r = 62, stroke = 26;
  const circumference = 2 * Math.PI * r;
  let offset = 0;
  if (total <= 0) {
    chart.append(svg("circle", { cx, cy, r, fill: "none", stroke: "#e2e8f0", "stroke-width": stroke }));
  }
  parts.forEach(([, value], i) => {
    if (total <= 0 || value <= 0) return;
    const length = (circumference * value) / total;
    chart.append(
      svg("circle", {
        cx, cy, r, fill: "none", stroke: COLOURS[i % COLOURS.length], "stroke-width": stroke,
        "stroke-dasharray": `${length} ${circumference - length}`,
        "stroke-dashoffset": -offset, transform: `rotate(-90 ${cx} ${cy})`,
      }),
    );
    offset += length;
  });
  const share = total > 0 ? Math.round((100 * parts[0][1]) / total) + "%" : "–";
  chart.append(svg("text", { x: cx, y: cy + 5, "text-anchor": "middle", "font-size": 18 }, share));
  parts.forEach(([label, value], i) => {
    const y = 40 + i * 24;
    chart.append(
      svg("rect", { x: 180, y: y - 11, width: 12, height: 12, fill: COLOURS[i % COLOURS.length] }),
      svg("text", { x: 198, y }, `${label}: ${value}`),
    );
  });
  return chartCard(title, chart);
}

// Columns over time: [[label, value], ...] (e.g. conversations per hour).
function columns(title, points) {
  const width = 420, height = 180, bottom = 150, left = 30;
  const max = Math.max(1, ...points.map(([, v]) => v));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  const step = (width - left) / Math.max(points.length, 1);
  chart.append(svg("line", { x1: left, y1: bottom, x2: width, y2: bottom, stroke: "#a0aec0" }));
  chart.append(svg("text", { x: 0, y: 14 }, String(max)));
  points.forEach(([label, value], i) => {
    const h = ((bottom - 20) * value) / max;
    const x = left + i * step + step * 0.15;
    chart.append(svg("rect", { x, y: bottom - h, width: step * 0.7, height: Math.max(h, 0), fill: COLOURS[0], rx: 2 }));
    if (points.length <= 12 || i % Math.ceil(points.length / 12) === 0) {
      chart.append(svg("text", { x, y: bottom + 14 }, label));
    }
  });
  return chartCard(title, chart);
}

function chartCard(title, chart) {
  return el("section", { class: "card chart" }, el("div", { class: "label", text: title }), chart);
}

function card(label, value, id) {
  return el("div", { class: "card", id }, el("div", { class: "value", text: value }), el("div", { class: "label", text: label }));
}

const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : 0);

function render(f, recent) {
  const conversations = num(f.conversations);
  const share = f.resolved_share;
  const resolvedByAgent = num(f.resolved_without_human);
  const humanHandled = num(f.escalations);
  $("cards").replaceChildren(
    card("Conversations", String(conversations), "fig-conversations"),
    card("Resolved without a human", typeof share === "number" ? Math.round(share * 100) + "%" : "–", "fig-share"),
    card("Median time to resolution", formatDuration(f.median_resolution_seconds), "fig-median"),
    card("Escalations", String(num(f.escalations)), "fig-escalations"),
    card("Policy blocks", String(num(f.policy_blocks)), "fig-blocks"),
  );
  const charts = [
    donut("Resolved without a human", [
      ["agent alone", resolvedByAgent],
      ["escalated to a human", humanHandled],
      ["other (open, waiting)", Math.max(0, conversations - resolvedByAgent - humanHandled)],
    ]),
    barChart("Volumes", [
      ["conversations", conversations],
      ["escalations", num(f.escalations)],
      ["policy blocks", num(f.policy_blocks)],
      ["approvals asked", num(f.approvals)],
      ["approved or refused by the supervisor agent", num(f.supervisor_decisions)],
    ]),
  ];
  if (recent.length) {
    const byStatus = {};
    for (const c of recent) byStatus[c.status] = (byStatus[c.status] || 0) + 1;
    charts.push(barChart("Recent conversations by status", Object.entries(byStatus)));
    // Conversations started per hour over the last 24 hours.
    const now = Date.now() / 1000;
    const hours = Array.from({ length: 24 }, (_, i) => {
      const start = new Date((Math.floor(now / 3600) - 23 + i) * 3600 * 1000);
      return [String(start.getHours()).padStart(2, "0") + "h", 0];
    });
    for (const c of recent) {
      const age = Math.floor(now / 3600) - Math.floor(c.created / 3600);
      if (age >= 0 && age < 24) hours[23 - age][1] += 1;
    }
    charts.push(columns("Conversations started per hour (last 24 h)", hours));
    // How long resolved and closed conversations took.
    const buckets = [
      ["under 1 min", 60],
      ["1–5 min", 300],
      ["5–30 min", 1800],
      ["30 min–2 h", 7200],
      ["over 2 h", Infinity],
    ].map(([label, limit]) => [label, limit, 0]);
    for (const c of recent) {
      if (c.resolved_at === null || c.resolved_at === undefined) continue;
      const took = c.resolved_at - c.created;
      const bucket = buckets.find(([, limit]) => took < limit);
      bucket[2] += 1;
    }
    charts.push(barChart("Time to resolution (recent)", buckets.map(([label, , n]) => [label, n])));
  }
  $("charts").replaceChildren(...charts);
  $("updated").textContent = new Date().toLocaleTimeString();
}

async function refresh() {
  try {
    const [{ figures }, { conversations }] = await Promise.all([
      api("/api/console/figures", { token }),
      api("/api/console/conversations?limit=500", { token }),
    ]);
    render(figures, conversations);
    $("error").textContent = "";
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      sessionStorage.removeItem("pilothouse.console.token");
      token = null;
      $("app").hidden = true;
      $("gate").hidden = false;
      $("gate-error").textContent = "The console token was refused.";
      return;
    }
    $("error").textContent = err.message;
  }
}

function start() {
  $("gate").hidden = true;
  $("app").hidden = false;
  refresh();
  setInterval(() => token && refresh(), 10000);
}

$("gate").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("pilothouse.console.token", token);
  start();
});

if (token) start();
else $("gate").hidden = false;
