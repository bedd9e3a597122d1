/*
 * thinkq gateway: the live page's script (part of thinkq, under the project's licence).
 * It polls dashboard.json (same origin, the sign-in cookie) and draws with plot.js.
 * Every figure shown carries its raw value in a data-value attribute.
 * No dependencies beyond plot.js, no build step, nothing fetched from elsewhere.
 */
(function () {
  "use strict";
  var P = window.ThinkqPlot;
  var updated = document.getElementById("updated");
  var poll = Number(updated.getAttribute("data-poll")) || 2000;
  var fmt = P.format;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var key in attrs || {}) {
      if (attrs[key] !== undefined && attrs[key] !== null) node.setAttribute(key, attrs[key]);
    }
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function raw(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  function seconds(v) { return v === null || v === undefined ? "–" : fmt(v) + " s"; }
  function percent(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %"; }
  function ago(age) {
    if (age < 90) return Math.round(age) + " s ago";
    if (age < 5400) return Math.round(age / 60) + " min ago";
    return (age / 3600).toFixed(1) + " h ago";
  }

  function stat(id, label, value, text, hint) {
    var box = el("div", { class: "tq-stat", title: hint || "" });
    box.appendChild(el("div", { class: "tq-label" }, label));
    box.appendChild(el("div", { class: "tq-value", id: id, "data-value": raw(value) }, text));
    return box;
  }

  function table(target, head, rows) {
    var t = el("table", { class: "tq-table" });
    var tr = el("tr");
    head.forEach(function (h) { tr.appendChild(el("th", {}, h)); });
    t.appendChild(el("thead")).appendChild(tr);
    var body = t.appendChild(el("tbody"));
    rows.forEach(function (row) {
      var line = body.appendChild(el("tr", row.attrs || {}));
      row.cells.forEach(function (c) {
        line.appendChild(el("td", c.attrs || {}, c.text));
      });
    });
    var node = document.getElementById(target);
    node.replaceChildren(t);
  }

  function cell(text, cls, value) {
    return { text: text, attrs: { class: cls, "data-value": raw(value) } };
  }

  function drawFigures(d) {
    var f = d.figures;
    var box = document.getElementById("figures");
    box.replaceChildren(
      stat("rate", "arrival rate (estimated)", f.rate_estimate, fmt(f.rate_estimate) + " /s",
           "the rate the budgets were solved for"),
      stat("utilization", "utilisation", f.utilization, percent(f.utilization),
           "lambda E[S] at the budgets (of C(B) on a batched server)"),
      stat("predicted", "mean system time, predicted", f.predicted_mean_system_time,
           seconds(f.predicted_mean_system_time), "eq. 6 at the estimated load"),
      stat("measured", "mean system time, measured", f.measured_mean_system_time,
           seconds(f.measured_mean_system_time), "served requests of the window"),
      stat("waiting", "waiting", f.waiting, String(f.waiting), "requests in the queue"),
      stat("in-service", "in service", f.in_service, f.in_service + " / " + f.concurrency,
           "requests upstream / slots"),
      stat("predicted-wait", "wait for a new request", f.predicted_wait,
           seconds(f.predicted_wait), "the work queued ahead of it"),
      stat("solves", "re-solves", f.solves, String(f.solves), "solves since start")
    );
    var every = f.resolve_every > 0 ? "re-solve every " + fmt(f.resolve_every) + " s" :
      "re-solve on demand";
    var note = "window " + fmt(f.window) + " s, " + every + ", queue limit " + f.max_queue + ", " + f.load_changes + " load changes, " +
      f.retries + " retries" + (f.refit ? ", latency lines refitted online" : "");
    document.getElementById("figures-note").textContent = note;
    var health = document.getElementById("health");
    health.textContent = f.overloaded ? "overloaded" : "stable";
    health.setAttribute("data-overloaded", String(f.overloaded));
    health.className = "tq-badge " + (f.overloaded ? "tq-badge-bad" : "tq-badge-good");
    document.getElementById("model").textContent = d.model + " · " + d.mode + " mode";
  }

  function clock(age) {
    var when = new Date(Date.now() - 1000 * age);
    return when.toTimeString().slice(0, 8);
  }

  function drawHistory(d) {
    var s = d.history.samples;
    var x = s.age.map(function (a) { return -a / 60; });
    function pts(col) { return col.map(function (v, i) { return [x[i], v]; }); }
    P.lineChart("time-chart", {
      height: 280, xLabel: "minutes ago", yLabel: "seconds", yZero: true,
      xMin: Math.min(-1, x.length ? x[0] : -1), xMax: 0,
      xFormat: function (v) { return fmt(-v); },
      series: [
        { name: "predicted (model)", points: pts(s.predicted), color: "#2563eb" },
        { name: "measured (window)", points: pts(s.measured), color: "#dc2626", dots: x.length < 60 }
      ],
      empty: "no samples yet: one comes with each re-solve"
    });
    var slo = d.figures.slo;
    if (slo) drawSlo(slo, x, s);
  }

  function drawSlo(slo, x, s) {
    document.getElementById("slo-card").hidden = false;
    table("slo-table", ["objective", "target", "predicted", "measured", "met"],
      slo.objectives.map(function (o) {
        var met = o.measured === null ? "–" : (o.measured <= o.target ? "yes" : "no");
        return { attrs: { "data-objective": o.objective }, cells: [
          cell(o.objective, "objective", o.objective), cell(seconds(o.target), "target", o.target),
          cell(seconds(o.predicted), "predicted", o.predicted),
          cell(seconds(o.measured), "measured", o.measured), cell(met, "met", met)
        ] };
      }));
    var series = [];
    slo.objectives.forEach(function (o, k) {
      series.push({ name: o.objective + " predicted", color: P.palette[k % 8],
        points: s.slo.map(function (v, i) { return [x[i], v[k] ? v[k][0] : null]; }) });
      series.push({ name: o.objective + " measured", color: P.palette[k % 8], dashed: true,
        points: s.slo.map(function (v, i) { return [x[i], v[k] ? v[k][1] : null]; }) });
    });
    P.lineChart("slo-chart", {
      height: 240, xLabel: "minutes ago", yLabel: "seconds", yZero: true, series: series,
      xMin: Math.min(-1, x.length ? x[0] : -1), xMax: 0,
      xFormat: function (v) { return fmt(-v); },
      hLines: slo.objectives.map(function (o) { return { y: o.target, label: o.objective, dashed: true }; })
    });
  }

  function drawFrontier(d) {
    var fr = d.frontier, note = document.getElementById("frontier-note");
    if (!fr) {
      P.message("frontier-chart", d.frontier_error || "tracing the frontier at the current load…",
                d.frontier_error ? "warn" : "info");
      note.textContent = "";
      return;
    }
    var mean = fr.points.map(function (p) { return [p.mean_system_time, 100 * p.accuracy]; });
    var tail = fr.points.map(function (p) { return [p.percentile_system_time, 100 * p.accuracy]; });
    var op = fr.operating_point;
    P.lineChart("frontier-chart", {
      height: 280, xLabel: "system time (s, log scale)", yLabel: "mean accuracy (%)", xLog: true,
      series: [
        { name: "mean", points: mean, dots: true },
        { name: "p" + fr.percentile, points: tail, dashed: true }
      ],
      markers: op.mean_system_time === null ? [] : [
        { x: op.mean_system_time, y: 100 * op.accuracy, label: "in force", color: "#dc2626" }]
    });
    note.textContent = "Each point: the budgets solve gives at one alpha, at " + fmt(fr.rate) +
      " /s and the estimated shares" + (fr.current ? "" : " (updating for the latest re-solve)") +
      ". The ring: the budgets in force, at " + fmt(100 * op.accuracy) + " % accuracy.";
  }

  function drawBudgets(d) {
    var b = d.budgets;
    document.getElementById("budgets-note").textContent = (b.all_rows ?
      b.types + " task types" : "the " + b.rows.length + " of " + b.types +
      " task types with the largest shares; the histogram covers all") +
      ". Mean budget " + fmt(b.mean_budget) + " tokens (share-weighted), mean accuracy " +
      fmt(100 * b.mean_accuracy) + " %; " + b.zero_budget + " at zero, " + b.at_max_tokens +
      " at l_max = " + b.max_tokens + ".";
    table("budgets-table", ["task", "budget", "share", "accuracy", "service", "t0", "c"],
      b.rows.map(function (r) {
        return { attrs: { "data-task": r.task }, cells: [
          cell(r.task, "task", r.task), cell(String(r.budget), "budget", r.budget),
          cell(percent(r.share), "share", r.share), cell(percent(r.accuracy), "accuracy", r.accuracy),
          cell(seconds(r.service_time), "service", r.service_time), cell(fmt(r.t0), "t0", r.t0),
          cell(fmt(r.c, 3), "c", r.c)
        ] };
      }));
    var chart = document.getElementById("budgets-chart");
    if (b.all_rows) {
      P.barChart(chart, { title: "budget (thinking tokens)", max: b.max_tokens || undefined,
        bars: b.rows.map(function (r) { return { label: r.task, value: r.budget,
          note: percent(r.share) }; }) });
    } else {
      var h = b.histogram;
      P.barChart(chart, { title: "task types by budget (share of queries)",
        bars: h.types.map(function (n, i) {
          return { label: Math.round(h.edges[i]) + "–" + Math.round(h.edges[i + 1]), value: n,
                   note: percent(h.share[i]) };
        }) });
    }
  }

  function drawResolves(d) {
    var h = d.history, last = h.last;
    document.getElementById("resolves-note").textContent = h.resolves + " re-solves since start" +
      (last ? "; the last " + ago(last.age) + " at " + fmt(last.rate) + " /s" : "") +
      ". Listed: those that moved budgets or the overload state.";
    table("resolves-table", ["when", "rate", "utilisation", "budgets moved"],
      h.log.slice(0, 8).map(function (r) {
        var moves = r.moves.map(function (m) {
          var delta = m.after - m.before;
          return m.task + " " + m.before + "→" + m.after + " (" + (delta > 0 ? "+" : "") + delta + ")";
        }).join(", ");
        if (r.moved > r.moves.length) moves += " and " + (r.moved - r.moves.length) + " more";
        if (r.overloaded) moves = "overloaded: zero budgets. " + moves;
        return { cells: [
          cell(clock(r.age) + " (" + ago(r.age) + ")", "when", r.age), cell(fmt(r.rate) + " /s", "rate", r.rate),
          cell(percent(r.utilization), "utilization", r.utilization),
          cell(moves || "start: the plan at the prior load", "moves", r.moved)
        ] };
      }));
  }

  function drawServer(d) {
    var s = d.figures.server, reps = d.figures.replicas || [];
    document.getElementById("server-card").hidden = !s;
    if (s) {
      table("server", ["model", "slots", "capacity C(B)", "mean batch (pred.)", "mean batch (meas.)",
                       "step time", "wait (pred.)"],
        [{ cells: [cell(s.model, "model", s.model), cell(String(s.slots), "slots", s.slots),
          cell(fmt(s.capacity), "capacity", s.capacity),
          cell(fmt(s.predicted_mean_batch), "predicted-batch", s.predicted_mean_batch),
          cell(fmt(s.measured_mean_batch), "measured-batch", s.measured_mean_batch),
          cell(seconds(s.predicted_step_time), "step", s.predicted_step_time),
          cell(seconds(s.predicted_mean_waiting_time), "wait", s.predicted_mean_waiting_time)] }]);
    }
    document.getElementById("replicas-card").hidden = reps.length < 2;
    if (reps.length > 1) {
      var keys = Object.keys(reps[0]);
      table("replicas", keys, reps.map(function (r) {
        return { cells: keys.map(function (k) { return cell(String(r[k]), k, r[k]); }) };
      }));
    }
  }

  var drawn = [drawFigures, drawHistory, drawFrontier, drawBudgets, drawResolves, drawServer];

  function draw(d, fetched) {
    drawn.forEach(function (f) {
      try { f(d); } catch (e) { if (window.console) console.error(e); }
    });
    updated.textContent = "updated " + new Date().toTimeString().slice(0, 8);
    updated.className = "tq-status tq-ok";
    // when the figures shown were asked for and drawn (seconds since the epoch)
    document.body.setAttribute("data-fetched", String(fetched / 1000));
    document.body.setAttribute("data-drawn", String(Date.now() / 1000));
  }

  function refresh() {
    var fetched = Date.now();
    fetch("dashboard.json", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status === 401 ? "signed out: reload to sign in" : "HTTP " + r.status);
        return r.json();
      })
      .then(function (d) { draw(d, fetched); })
      .catch(function (e) {
        updated.textContent = String(e.message || e);
        updated.className = "tq-status tq-failed";
      })
      .then(function () { window.setTimeout(refresh, poll); });
  }

  refresh();
})();
