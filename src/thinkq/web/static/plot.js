/*
 * thinkq plot.js: a small SVG chart library with no dependencies (no build step, no CDN).
 *
 * Load it with a script element (src=".../plot.js") or inline it; it defines one global,
 * window.ThinkqPlot (and module.exports under CommonJS). Every chart replaces the contents
 * of its target and returns the <svg> it drew; redraw by calling it again with new data.
 *
 * ThinkqPlot.lineChart(target, spec) -> SVGSVGElement
 *   target  an Element, or the id of one.
 *   spec = {
 *     width, height        size in px (default: the target's width, else 640; height 320)
 *     title, xLabel, yLabel
 *     xLog, yLog           log10 axes (points with a non-positive coordinate are dropped)
 *     xMin, xMax, yMin, yMax   fixed ends of the axes (default: from the data, widened to
 *                          nice ticks); yZero: true puts 0 on the y axis
 *     xFormat, yFormat     function (number) -> string for the tick labels
 *     series: [{
 *       name               legend text
 *       points             [[x, y], ...] (null or non-finite y breaks the line)
 *       color              any CSS colour (default: ThinkqPlot.palette in order)
 *       dashed             true for a dashed line
 *       line               false to draw the points only (default true)
 *       dots               true to draw a dot at each point (hover shows its values)
 *       width              line width in px (default 2)
 *     }, ...]
 *     markers: [{ x, y, label, color, below }]   operating points: a ring, its label (above
 *                          the point; below: true puts it under), and dotted guides to both
 *                          axes (for "the gateway is here on the frontier")
 *     hLines: [{ y, label, color, dashed }]   horizontal reference lines (an SLO target)
 *     vLines: [{ x, label, color, dashed }]   vertical reference lines
 *     legend               true/false (default: true when there is more than one name);
 *                          drawn in a strip above the plot area, never over the data
 *     empty                text shown when no series has a point (default "no data")
 *   }
 *
 * ThinkqPlot.barChart(target, spec) -> SVGSVGElement      horizontal bars, one per row
 *   spec = {
 *     width, height        (default height: 26 px per bar plus the axis)
 *     title, xLabel
 *     bars: [{ label, value, color, note }]   note: text after the value (e.g. "12 %")
 *     max                  the axis end (default: the largest value, widened to a nice tick)
 *     format               function (number) -> string for values and ticks
 *     labelWidth           px kept for the labels on the left (default: from the longest)
 *   }
 *
 * ThinkqPlot.message(target, text, kind)   replaces a chart by a message box; kind is
 *   "error" (default), "warn" or "info". Use it for unstable or invalid settings.
 * ThinkqPlot.niceTicks(lo, hi, count)  -> ticks at 1, 2, 5 x 10^k covering [lo, hi]
 * ThinkqPlot.logTicks(lo, hi)          -> powers of ten covering [lo, hi] (lo > 0)
 * ThinkqPlot.format(value, digits)     -> compact text: 1234 -> "1.23k", 0.000031 -> "3.1e-5"
 * ThinkqPlot.palette                   -> the default series colours (array of CSS colours)
 *
 * Styling: every element carries a "tq-" class (tq-chart, tq-axis, tq-grid, tq-series,
 * tq-marker, tq-legend, tq-bar, tq-message); thinkq.css styles them.
 */
(function (root) {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var palette = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2",
                 "#db2777", "#4b5563"];

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    for (var key in attrs) {
      if (attrs[key] !== undefined && attrs[key] !== null) node.setAttribute(key, attrs[key]);
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    var node = el("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    node.textContent = content;
    return node;
  }

  function target(spec) {
    var node = typeof spec === "string" ? document.getElementById(spec) : spec;
    if (!node) throw new Error("ThinkqPlot: no element " + spec);
    return node;
  }

  function format(value, digits) {
    if (value === null || value === undefined || !isFinite(value)) return "–";
    digits = digits || 3;
    var size = Math.abs(value);
    if (size === 0) return "0";
    if (size >= 1e6) return trim((value / 1e6).toPrecision(digits)) + "M";
    if (size >= 1e4) return trim((value / 1e3).toPrecision(digits)) + "k";
    if (size >= 1e3) return String(Math.round(value));
    if (size >= 1e-3) return String(Number(value.toPrecision(digits)));
    var exp = value.toExponential(Math.max(digits - 2, 0)).replace("e+", "e");
    return exp.replace(/\.?0+e/, "e");
  }

  function trim(s) {
    return String(Number(s));
  }

  function niceStep(span, count) {
    var raw = span / Math.max(count, 1);
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var unit = raw / power;
    return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
  }

  function niceTicks(lo, hi, count) {
    count = count || 5;
    if (!(isFinite(lo) && isFinite(hi))) return [];
    if (hi === lo) { hi = lo + (lo === 0 ? 1 : Math.abs(lo) * 0.1); lo = lo - (hi - lo); }
    var step = niceStep(hi - lo, count);
    var first = Math.floor(lo / step + 1e-9), last = Math.ceil(hi / step - 1e-9);
    var ticks = [];
    for (var i = first; i <= last && ticks.length < 60; i++) ticks.push(+(i * step).toPrecision(12));
    return ticks;
  }

  function logTicks(lo, hi) {
    var ticks = [];
    for (var k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
      ticks.push(Math.pow(10, k));
    }
    return ticks;
  }

  function scale(lo, hi, from, to, log) {
    var f = log ? Math.log10 : function (v) { return v; };
    var a = f(lo), b = f(hi);
    var span = b - a || 1;
    return function (v) { return from + (f(v) - a) / span * (to - from); };
  }

  function axisRange(values, log, fixedLo, fixedHi, zero) {
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (v) {
      if (isFinite(v) && (!log || v > 0)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    });
    if (zero && !log) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
    if (fixedLo !== undefined && fixedLo !== null) lo = fixedLo;
    if (fixedHi !== undefined && fixedHi !== null) hi = fixedHi;
    if (!isFinite(lo) || !isFinite(hi)) return null;
    var ticks = log ? logTicks(lo, hi) : niceTicks(lo, hi, 5);
    if (fixedLo === undefined || fixedLo === null) lo = Math.min(lo, ticks[0]);
    if (fixedHi === undefined || fixedHi === null) hi = Math.max(hi, ticks[ticks.length - 1]);
    if (hi === lo) hi = lo + 1;
    ticks = ticks.filter(function (t) { return t >= lo - 1e-12 * Math.abs(hi) && t <= hi * (1 + 1e-12) + 1e-300; });
    return { lo: lo, hi: hi, ticks: ticks };
  }

  function frame(node, spec, height) {
    node.innerHTML = "";
    var width = spec.width || node.clientWidth || 640;
    var svg = el("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height,
                          "class": "tq-chart", role: "img" }, node);
    if (spec.title) {
      el("title", {}, svg).textContent = spec.title;
      text(svg, 12, 18, spec.title, { "class": "tq-title" });
    }
    return { svg: svg, width: width };
  }

  function usable(point, xLog, yLog) {
    var x = point[0], y = point[1];
    return y !== null && isFinite(x) && isFinite(y) && (!xLog || x > 0) && (!yLog || y > 0);
  }

  function drawAxes(svg, box, xs, ys, spec) {
    var xf = spec.xFormat || format, yf = spec.yFormat || format;
    var grid = el("g", { "class": "tq-grid" }, svg);
    var axis = el("g", { "class": "tq-axis" }, svg);
    ys.range.ticks.forEach(function (t) {
      var y = ys.at(t);
      el("line", { x1: box.left, x2: box.right, y1: y, y2: y }, grid);
      text(axis, box.left - 6, y + 4, yf(t), { "text-anchor": "end" });
    });
    xs.range.ticks.forEach(function (t) {
      var x = xs.at(t);
      el("line", { x1: x, x2: x, y1: box.top, y2: box.bottom }, grid);
      text(axis, x, box.bottom + 16, xf(t), { "text-anchor": "middle" });
    });
    el("line", { x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom, "class": "tq-axis-line" }, axis);
    el("line", { x1: box.left, x2: box.left, y1: box.top, y2: box.bottom, "class": "tq-axis-line" }, axis);
    if (spec.xLabel) {
      text(axis, (box.left + box.right) / 2, box.bottom + 34, spec.xLabel,
           { "text-anchor": "middle", "class": "tq-axis-label" });
    }
    if (spec.yLabel) {
      var cy = (box.top + box.bottom) / 2;
      text(axis, 14, cy, spec.yLabel, { "text-anchor": "middle", "class": "tq-axis-label",
                                       transform: "rotate(-90 14 " + cy + ")" });
    }
  }

  function drawSeries(svg, series, xs, ys, spec, index) {
    var color = series.color || palette[index % palette.length];
    var g = el("g", { "class": "tq-series" }, svg);
    var path = "", pen = false;
    (series.points || []).forEach(function (p) {
      if (!usable(p, spec.xLog, spec.yLog)) { pen = false; return; }
      path += (pen ? "L" : "M") + xs.at(p[0]).toFixed(2) + "," + ys.at(p[1]).toFixed(2);
      pen = true;
      if (series.dots) {
        var dot = el("circle", { cx: xs.at(p[0]), cy: ys.at(p[1]), r: 3, fill: color }, g);
        el("title", {}, dot).textContent = (series.name ? series.name + ": " : "") +
          format(p[0]) + ", " + format(p[1]);
      }
    });
    if (series.line !== false && path) {
      el("path", { d: path, fill: "none", stroke: color, "stroke-width": series.width || 2,
                   "stroke-dasharray": series.dashed ? "6 4" : null,
                   "stroke-linejoin": "round" }, g);
    }
    return color;
  }

  function drawRule(svg, box, rule, at, horizontal) {
    var v = at(horizontal ? rule.y : rule.x);
    if (!isFinite(v)) return;
    var g = el("g", { "class": "tq-rule" }, svg);
    var color = rule.color || "#6b7280";
    el("line", Object.assign(horizontal ? { x1: box.left, x2: box.right, y1: v, y2: v }
                                        : { x1: v, x2: v, y1: box.top, y2: box.bottom },
               { stroke: color, "stroke-width": 1.5,
                 "stroke-dasharray": rule.dashed === false ? null : "5 4" }), g);
    if (rule.label) {
      text(g, horizontal ? box.right - 4 : v + 4, horizontal ? v - 5 : box.top + 12, rule.label,
           { "text-anchor": horizontal ? "end" : "start", fill: color, "class": "tq-rule-label" });
    }
  }

  function drawMarker(svg, box, marker, xs, ys) {
    var x = xs.at(marker.x), y = ys.at(marker.y);
    if (!isFinite(x) || !isFinite(y)) return;
    var color = marker.color || "#111827";
    var g = el("g", { "class": "tq-marker" }, svg);
    el("line", { x1: box.left, x2: x, y1: y, y2: y, stroke: color, "stroke-dasharray": "2 3" }, g);
    el("line", { x1: x, x2: x, y1: y, y2: box.bottom, stroke: color, "stroke-dasharray": "2 3" }, g);
    el("circle", { cx: x, cy: y, r: 7, fill: "none", stroke: color, "stroke-width": 2 }, g);
    el("circle", { cx: x, cy: y, r: 2.5, fill: color }, g);
    if (marker.label) {
      var right = x < (box.left + box.right) / 2;
      var below = marker.below === true || (marker.below === undefined && y - 22 < box.top);
      var label = text(g, right ? x + 11 : x - 11, below ? y + 20 : y - 10, marker.label,
                       { "text-anchor": right ? "start" : "end", "class": "tq-marker-label" });
      label.setAttribute("fill", color);
    }
  }

  function legendRows(entries, box) {
    var rows = 1, x = box.left;
    entries.forEach(function (entry) {
      var w = 23 + Math.max(40, entry.name.length * 6.6) + 14;
      if (x + w > box.right && x > box.left) { rows += 1; x = box.left; }
      x += w;
    });
    return rows;
  }

  function drawLegend(svg, box, entries, top) {
    var g = el("g", { "class": "tq-legend" }, svg);
    var x = box.left, y = top + 12;
    entries.forEach(function (entry) {
      var w = 23 + Math.max(40, entry.name.length * 6.6) + 14;
      if (x + w > box.right && x > box.left) { x = box.left; y += 16; }
      el("line", { x1: x, x2: x + 18, y1: y - 4, y2: y - 4, stroke: entry.color,
                   "stroke-width": 2.5, "stroke-dasharray": entry.dashed ? "5 3" : null }, g);
      text(g, x + 23, y, entry.name);
      x += w;
    });
  }

  function lineChart(where, spec) {
    var node = target(where);
    var height = spec.height || 320;
    var f = frame(node, spec, height);
    var series = spec.series || [];
    var xsAll = [], ysAll = [];
    series.forEach(function (s) {
      (s.points || []).forEach(function (p) {
        if (usable(p, spec.xLog, spec.yLog)) { xsAll.push(p[0]); ysAll.push(p[1]); }
      });
    });
    (spec.markers || []).forEach(function (m) { xsAll.push(m.x); ysAll.push(m.y); });
    (spec.hLines || []).forEach(function (r) { ysAll.push(r.y); });
    (spec.vLines || []).forEach(function (r) { xsAll.push(r.x); });
    var xr = axisRange(xsAll, spec.xLog, spec.xMin, spec.xMax, false);
    var yr = axisRange(ysAll, spec.yLog, spec.yMin, spec.yMax, spec.yZero);
    if (!xr || !yr) {
      text(f.svg, f.width / 2, height / 2, spec.empty || "no data",
           { "text-anchor": "middle", "class": "tq-empty" });
      return f.svg;
    }
    var entries = [];
    series.forEach(function (s, i) {
      if (s.name) entries.push({ name: s.name, color: s.color || palette[i % palette.length],
                                 dashed: s.dashed });
    });
    var legend = spec.legend === true || (spec.legend !== false && entries.length > 1);
    var box = { left: spec.yLabel ? 66 : 52, right: f.width - 16,
                top: spec.title ? 34 : 14, bottom: height - (spec.xLabel ? 44 : 26) };
    var legendTop = box.top - 6;
    if (legend) box.top += 16 * legendRows(entries, box) + 4;
    var xs = { range: xr, at: scale(xr.lo, xr.hi, box.left, box.right, spec.xLog) };
    var ys = { range: yr, at: scale(yr.lo, yr.hi, box.bottom, box.top, spec.yLog) };
    drawAxes(f.svg, box, xs, ys, spec);
    var clipId = "tq-clip-" + Math.random().toString(36).slice(2);
    var clip = el("clipPath", { id: clipId }, el("defs", {}, f.svg));
    el("rect", { x: box.left, y: box.top - 2, width: box.right - box.left,
                 height: box.bottom - box.top + 4 }, clip);
    var plot = el("g", { "clip-path": "url(#" + clipId + ")" }, f.svg);
    (spec.hLines || []).forEach(function (r) { drawRule(plot, box, r, ys.at, true); });
    (spec.vLines || []).forEach(function (r) { drawRule(plot, box, r, xs.at, false); });
    series.forEach(function (s, i) { drawSeries(plot, s, xs, ys, spec, i); });
    (spec.markers || []).forEach(function (m) { drawMarker(f.svg, box, m, xs, ys); });
    if (legend) drawLegend(f.svg, box, entries, legendTop);
    return f.svg;
  }

  function barChart(where, spec) {
    var node = target(where);
    var bars = spec.bars || [];
    var fmt = spec.format || format;
    var rowHeight = 26;
    var top = spec.title ? 30 : 8;
    var height = spec.height || top + rowHeight * Math.max(bars.length, 1) + (spec.xLabel ? 44 : 28);
    var f = frame(node, spec, height);
    if (!bars.length) {
      text(f.svg, f.width / 2, height / 2, spec.empty || "no data",
           { "text-anchor": "middle", "class": "tq-empty" });
      return f.svg;
    }
    var longest = bars.reduce(function (n, b) { return Math.max(n, String(b.label).length); }, 0);
    var left = spec.labelWidth || Math.min(Math.max(60, longest * 7 + 14), f.width * 0.4);
    var longestValue = bars.reduce(function (n, b) {
      return Math.max(n, (fmt(b.value) + (b.note ? "  " + b.note : "")).length);
    }, 0);
    var box = { left: left, right: f.width - Math.min(Math.max(40, longestValue * 6.4 + 12), f.width * 0.4),
                top: top, bottom: top + rowHeight * bars.length };
    var biggest = bars.reduce(function (m, b) { return Math.max(m, b.value || 0); }, 0);
    var range = axisRange([0, spec.max || biggest], false, 0, spec.max, true);
    var at = scale(range.lo, range.hi, box.left, box.right, false);
    var axis = el("g", { "class": "tq-axis" }, f.svg);
    var grid = el("g", { "class": "tq-grid" }, f.svg);
    range.ticks.forEach(function (t) {
      el("line", { x1: at(t), x2: at(t), y1: box.top, y2: box.bottom }, grid);
      text(axis, at(t), box.bottom + 16, fmt(t), { "text-anchor": "middle" });
    });
    if (spec.xLabel) {
      text(axis, (box.left + box.right) / 2, box.bottom + 34, spec.xLabel,
           { "text-anchor": "middle", "class": "tq-axis-label" });
    }
    bars.forEach(function (bar, i) {
      var y = box.top + i * rowHeight;
      var g = el("g", { "class": "tq-bar" }, f.svg);
      var w = Math.max(0, at(Math.max(bar.value || 0, 0)) - box.left);
      el("rect", { x: box.left, y: y + 4, width: w, height: rowHeight - 8, rx: 2,
                   fill: bar.color || palette[0] }, g);
      text(g, box.left - 6, y + rowHeight / 2 + 4, bar.label,
           { "text-anchor": "end", "class": "tq-bar-label" });
      text(g, box.left + w + 5, y + rowHeight / 2 + 4,
           fmt(bar.value) + (bar.note ? "  " + bar.note : ""), { "class": "tq-bar-value" });
      el("title", {}, g).textContent = bar.label + ": " + fmt(bar.value) + (bar.note ? " (" + bar.note + ")" : "");
    });
    el("line", { x1: box.left, x2: box.left, y1: box.top, y2: box.bottom, "class": "tq-axis-line" }, axis);
    return f.svg;
  }

  function message(where, content, kind) {
    var node = target(where);
    node.innerHTML = "";
    var box = document.createElement("div");
    box.className = "tq-message tq-" + (kind || "error");
    box.setAttribute("role", kind === "info" ? "status" : "alert");
    box.textContent = content;
    node.appendChild(box);
    return box;
  }

  var api = { lineChart: lineChart, barChart: barChart, message: message, niceTicks: niceTicks,
              logTicks: logTicks, format: format, palette: palette.slice() };
  if (typeof module === "object" && module.exports) module.exports = api;
  if (root) root.ThinkqPlot = api;
})(typeof window !== "undefined" ? window : this);
