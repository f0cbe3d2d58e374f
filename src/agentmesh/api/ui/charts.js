// Live SVG charts of the last 15 minutes, drawn from GET /v1/tenants/{t}/metrics/history
// (the control plane's own figures, one point a second). No library, no other origin.

const SVG = "http://www.w3.org/2000/svg";
const W = 320;
const H = 110;
const PAD = { l: 34, r: 6, t: 8, b: 16 };

function svgEl(name, attrs = {}) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** One chart: ``series`` is [{name, cls, values: [number|null]}]; ``marks`` are point indexes. */
export function drawChart(svg, times, series, marks, unit) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const all = series.flatMap((s) => s.values.filter((v) => typeof v === "number"));
  const max = Math.max(1, ...all);
  const t0 = times[0] ?? 0;
  const t1 = Math.max(times[times.length - 1] ?? 1, t0 + 1);
  const x = (t) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - (v / max) * (H - PAD.t - PAD.b);
  svg.append(svgEl("line", { x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, class: "axis" }));
  const top = svgEl("text", { x: 2, y: PAD.t + 6, class: "tick" });
  top.textContent = `${Math.round(max * 10) / 10}${unit}`;
  const zero = svgEl("text", { x: 2, y: H - PAD.b, class: "tick" });
  zero.textContent = "0";
  svg.append(top, zero);
  for (const i of marks) {
    svg.append(svgEl("line", {
      x1: x(times[i]), y1: PAD.t, x2: x(times[i]), y2: H - PAD.b, class: "anomaly", "data-anomaly": i,
    }));
  }
  for (const s of series) {
    const pts = [];
    s.values.forEach((v, i) => {
      if (typeof v === "number") pts.push(`${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`);
    });
    if (pts.length) {
      svg.append(svgEl("polyline", { points: pts.join(" "), class: `line ${s.cls}`, "data-points": pts.length }));
    }
  }
}

/** Redraw every chart of the overview from a history document. */
export function drawHistory(doc, $) {
  const points = doc.points || [];
  const times = points.map((p) => p.t);
  const marks = points.flatMap((p, i) => (p.anomalies && p.anomalies.length ? [i] : []));
  drawChart($("chart-throughput"), times, [{ name: "completed/s", cls: "s1", values: points.map((p) => p.completed) }], marks, "/s");
  drawChart($("chart-latency"), times, [
    { name: "p50", cls: "s1", values: points.map((p) => p.p50_ms) },
    { name: "p99", cls: "s2", values: points.map((p) => p.p99_ms) },
  ], marks, " ms");
  drawChart($("chart-queue"), times, [{ name: "waiting", cls: "s1", values: points.map((p) => p.queue_depth) }], marks, "");
  drawChart($("chart-failures"), times, [{ name: "failed/s", cls: "s2", values: points.map((p) => p.failed) }], marks, "/s");
  $("charts-note").textContent = points.length
    ? `${points.length} s of figures; red lines mark anomalies (${marks.length})`
    : "No figures yet for this tenant.";
}
