// The one chart function of the dashboard and the HTML report: drawChart(box, spec)
// draws an SVG as wide as `box` (and a legend under it), replacing what was there.
//
// spec = {
//   kind: "bars" | "lines",
//   xLabel, yLabel: axis titles with their units,
//   categories: ["15%", ...]       bars: one group of bars per category,
//   x: [0, 1, 2, ...]              lines: the x (epoch) of each value,
//   series: [{ name, color, values: [number | null, ...], labels: [text, ...] }],
//   yMax: optional top of the y axis (to compare charts), empty: shown when no series.
// }
// Colors are CSS values or custom properties ("--subtotal"). Values are numbers only
// for placing pixels; `labels` (bars) carry the exact figures shown on hover.
var drawChart = (function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  function el(name, attrs, text) {
    var e = document.createElementNS(SVG, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // Round steps: 1, 2 or 5 times a power of ten.
  function niceStep(span, ticks) {
    var raw = span / ticks, power = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / power;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
  }
  function color(c) {
    if (c && c.indexOf("--") === 0) {
      return getComputedStyle(document.documentElement).getPropertyValue(c).trim() || "#888";
    }
    return c || "#888";
  }
  function legend(box, series) {
    var div = document.createElement("div");
    div.className = "legend";
    series.forEach(function (s) {
      var span = document.createElement("span");
      span.style.setProperty("--c", color(s.color));
      span.textContent = s.name;
      div.appendChild(span);
    });
    box.appendChild(div);
  }

  return function drawChart(box, spec) {
    while (box.firstChild) box.removeChild(box.firstChild);
    var series = spec.series || [];
    var bars = spec.kind === "bars";
    var W = Math.max(300, Math.min(1100, box.clientWidth || 600));
    var H = Math.round(Math.max(200, Math.min(320, W * 0.45)));
    var L = 60, R = 12, T = 12, B = 42, pw = W - L - R, ph = H - T - B;
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H });

    var max = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    if (spec.yMax && spec.yMax > max) max = spec.yMax;
    var step = niceStep(max > 0 ? max : 1, 5), top = Math.max(step, Math.ceil(max / step) * step);
    var digits = step < 1 ? Math.min(6, Math.ceil(-Math.log10(step))) : 0;
    var y = function (v) { return T + ph - v / top * ph; };
    for (var v = 0; v <= top + step / 2; v += step) {
      svg.appendChild(el("line", { "class": "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.appendChild(el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(digits)));
    }
    svg.appendChild(el("text", { x: 12, y: T + ph / 2, transform: "rotate(-90 12 " + (T + ph / 2) + ")", "text-anchor": "middle" }, spec.yLabel || ""));
    svg.appendChild(el("text", { x: L + pw / 2, y: H - 4, "text-anchor": "middle" }, spec.xLabel || ""));

    if (bars) {
      var cats = spec.categories || [], n = Math.max(1, cats.length), gw = pw / n;
      var bw = Math.max(1, gw * 0.8 / Math.max(1, series.length));
      var every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(pw / 40))));
      cats.forEach(function (cat, i) {
        var x0 = L + i * gw + gw * 0.1;
        series.forEach(function (s, j) {
          var value = s.values[i];
          if (value === null || value === undefined) return;
          var h = value / top * ph;
          var bar = el("rect", { x: x0 + j * bw, y: T + ph - h, width: Math.max(1, bw - 1), height: Math.max(0, h), fill: color(s.color) });
          bar.appendChild(el("title", {}, cat + ": " + s.name + " " + (s.labels ? s.labels[i] : value)));
          svg.appendChild(bar);
        });
        if (i % every === 0) {
          svg.appendChild(el("line", { "class": "axis", x1: L + i * gw + gw / 2, x2: L + i * gw + gw / 2, y1: T + ph, y2: T + ph + 4 }));
          svg.appendChild(el("text", { x: L + i * gw + gw / 2, y: T + ph + 16, "text-anchor": "middle" }, cat));
        }
      });
    } else {
      var xs = spec.x || [], x0v = xs.length ? xs[0] : 0, x1v = xs.length ? xs[xs.length - 1] : 1;
      var span = Math.max(1, x1v - x0v);
      var x = function (v) { return L + (v - x0v) / span * pw; };
      var xstep = Math.max(1, niceStep(span, Math.max(2, Math.floor(pw / 90))));
      for (var t = Math.ceil(x0v / xstep) * xstep; t <= x1v; t += xstep) {
        svg.appendChild(el("line", { "class": "axis", x1: x(t), x2: x(t), y1: T + ph, y2: T + ph + 4 }));
        svg.appendChild(el("text", { x: x(t), y: T + ph + 16, "text-anchor": "middle" }, String(t)));
      }
      series.forEach(function (s) {
        var d = "", pen = "M", c = color(s.color);
        s.values.forEach(function (v, i) {
          if (v === null || v === undefined) { pen = "M"; return; }
          var before = i > 0 ? s.values[i - 1] : null, after = i + 1 < s.values.length ? s.values[i + 1] : null;
          // A value with no neighbour draws no line: a dot shows it.
          if ((before === null || before === undefined) && (after === null || after === undefined)) {
            var dot = el("circle", { cx: x(xs[i]), cy: y(v), r: 3, fill: c, "class": "series" });
            dot.appendChild(el("title", {}, s.name));
            svg.appendChild(dot);
          }
          d += pen + x(xs[i]).toFixed(1) + " " + y(v).toFixed(1) + " ";
          pen = "L";
        });
        if (d === "") return;
        var path = el("path", { d: d, fill: "none", stroke: c, "stroke-width": 1.75, "class": "series" });
        path.appendChild(el("title", {}, s.name));
        svg.appendChild(path);
      });
    }
    svg.appendChild(el("line", { "class": "axis", x1: L, x2: W - R, y1: T + ph, y2: T + ph }));
    svg.appendChild(el("line", { "class": "axis", x1: L, x2: L, y1: T, y2: T + ph }));
    if (series.length === 0 || (bars && (spec.categories || []).length === 0)) {
      svg.appendChild(el("text", { x: L + pw / 2, y: T + ph / 2, "text-anchor": "middle" }, spec.empty || "no rows"));
    }
    box.appendChild(svg);
    legend(box, series);
  };
})();
