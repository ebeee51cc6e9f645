"use strict";
(function () {
  var COLUMNS = ["PERCENTAGE", "AVG_ITEM_CT", "AVG_ORDER_SUBTOTAL", "AVG_ORDER_TOTAL", "AVG_DISCOUNT_TOTAL", "ORDER_COUNT"];
  var MONEY = { AVG_ORDER_SUBTOTAL: true, AVG_ORDER_TOTAL: true, AVG_DISCOUNT_TOTAL: true };
  var SERIES = [["AVG_ORDER_SUBTOTAL", "--subtotal", "avg subtotal"], ["AVG_ORDER_TOTAL", "--total", "avg total"], ["AVG_DISCOUNT_TOTAL", "--discount", "avg discount"]];
  var rows = new Map();      // percentage text -> row
  var changed = new Set();   // percentages changed by the last event
  var completedAt = null;
  var $ = function (id) { return document.getElementById(id); };

  // Figures arrive as exact JSON numbers; keep their text where the browser gives it
  // (JSON.parse's source text), else format the number back.
  function parseExact(text) {
    return JSON.parse(text, function (key, value, context) {
      if (typeof value === "number" && context && typeof context.source === "string") return context.source;
      return value;
    });
  }
  function show(column, value) {
    if (typeof value === "string") return value;
    if (typeof value !== "number") return "";
    return MONEY[column] ? value.toFixed(2) : String(value);
  }
  function key(row) { return show("PERCENTAGE", row.PERCENTAGE); }
  function sorted() {
    return Array.from(rows.values()).sort(function (a, b) { return Number(a.PERCENTAGE) - Number(b.PERCENTAGE); });
  }

  function setMeta(doc) {
    $("epoch").textContent = String(doc.epoch);
    $("position").textContent = doc.position === null || doc.position === undefined ? "–" : String(doc.position);
    var t = Date.parse(doc.completed_at);
    completedAt = isNaN(t) ? null : t;
    tick();
  }
  function tick() {
    if (completedAt === null) return;
    var s = Math.max(0, Math.floor((Date.now() - completedAt) / 1000));
    var text = s < 60 ? s + " s ago" : s < 3600 ? Math.floor(s / 60) + " min " + (s % 60) + " s ago" : Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min ago";
    $("fresh").textContent = text;
  }

  function renderTable() {
    var body = $("rows");
    while (body.firstChild) body.removeChild(body.firstChild);
    var list = sorted();
    if (list.length === 0) {
      var tr = document.createElement("tr"), td = document.createElement("td");
      td.className = "empty"; td.colSpan = 6; td.textContent = "no rows";
      tr.appendChild(td); body.appendChild(tr);
      return;
    }
    list.forEach(function (row) {
      var tr = document.createElement("tr");
      tr.dataset.percentage = key(row);
      if (changed.has(key(row))) tr.className = "changed";
      COLUMNS.forEach(function (c) {
        var td = document.createElement("td");
        td.dataset.column = c;
        td.textContent = show(c, row[c]);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function renderChart() {
    var list = sorted();
    drawChart($("chart"), {
      kind: "bars",
      xLabel: "discount percentage",
      yLabel: "currency units",
      categories: list.map(function (r) { return key(r) + "%"; }),
      series: SERIES.map(function (s) {
        return {
          name: s[2], color: s[1],
          values: list.map(function (r) { return Number(r[s[0]]) || 0; }),
          labels: list.map(function (r) { return show(s[0], r[s[0]]); })
        };
      }),
      empty: "no rows yet"
    });
  }
  function render() { renderTable(); renderChart(); }

  function snapshot(event) {
    var doc = parseExact(event.data);
    rows = new Map(); changed = new Set();
    doc.rows.forEach(function (r) { rows.set(key(r), r); });
    setMeta(doc); render();
  }
  function changes(event) {
    var doc = parseExact(event.data);
    changed = new Set();
    doc.changes.forEach(function (c) { if (Number(c.DIFF) < 0) { rows.delete(key(c)); changed.add(key(c)); } });
    doc.changes.forEach(function (c) {
      if (Number(c.DIFF) > 0) {
        var r = {};
        COLUMNS.forEach(function (k) { r[k] = c[k]; });
        rows.set(key(r), r); changed.add(key(r));
      }
    });
    setMeta(doc); render();
  }

  // The browser reconnects by itself and sends Last-Event-ID: the server replays the
  // epochs missed, or sends a fresh snapshot.
  var source = new EventSource("v1/changes");
  source.addEventListener("snapshot", snapshot);
  source.addEventListener("changes", changes);
  source.onopen = function () { $("conn").textContent = "live"; $("conn").className = "conn live"; };
  source.onerror = function () { $("conn").textContent = "reconnecting…"; $("conn").className = "conn down"; };
  setInterval(tick, 1000);
  var resized = null;
  window.addEventListener("resize", function () { clearTimeout(resized); resized = setTimeout(renderChart, 100); });
  renderChart();
})();
