/* thinkq explore: sliders -> POST api/solve (debounced) -> figures, frontier, budgets.
   Uses ThinkqPlot (plot.js) only. The status element carries the state of the last
   answer shown (data-state: loading, solving, ok, unstable, invalid, failed) and its
   settings (data-rate, data-alpha, data-max-tokens, data-slots), for tests. */
(function () {
  "use strict";
  var P = window.ThinkqPlot;
  var LABELS = {
    rate: ["rate λ", "queries per second"],
    alpha: ["alpha α", "accuracy's weight (per s)"],
    max_tokens: ["l_max", "the most thinking tokens"],
    slots: ["slots B", "sequences decoded at once"]
  };
  var DEBOUNCE_MS = 150;
  var about = null, controls = {}, timer = null, sent = 0, shown = 0;

  function $(id) { return document.getElementById(id); }
  function fmt(v, digits) { return P.format(v, digits || 4); }

  function status(state, text, settings) {
    var node = $("status");
    node.dataset.state = state;
    node.textContent = text;
    node.className = "tq-status " + ({ ok: "tq-ok", solving: "tq-busy", loading: "tq-busy" }[state] || "tq-failed");
    if (settings) {
      node.dataset.rate = String(settings.rate);
      node.dataset.alpha = String(settings.alpha);
      node.dataset.maxTokens = String(settings.max_tokens);
      node.dataset.slots = settings.slots === null ? "" : String(settings.slots);
    }
  }

  function control(name, range, value) {
    var box = document.createElement("div");
    box.className = "tq-control";
    var label = document.createElement("label");
    label.htmlFor = name + "-number";
    label.textContent = LABELS[name][0];
    var hint = document.createElement("span");
    hint.className = "tq-hint";
    hint.textContent = LABELS[name][1];
    label.appendChild(hint);
    var row = document.createElement("div");
    row.className = "tq-row";
    var slider = document.createElement("input");
    slider.type = "range";
    slider.id = name + "-slider";
    slider.setAttribute("aria-label", LABELS[name][0]);
    var number = document.createElement("input");
    number.type = "number";
    number.id = name + "-number";
    number.name = name;
    [slider, number].forEach(function (input) {
      input.min = range.min; input.max = range.max; input.step = range.step;
    });
    number.removeAttribute("max");  // the box takes any value; the server judges it
    slider.value = value; number.value = value;
    slider.addEventListener("input", function () { number.value = slider.value; changed(); });
    number.addEventListener("input", function () {
      if (number.value !== "" && isFinite(+number.value)) slider.value = number.value;
      changed();
    });
    row.appendChild(slider); row.appendChild(number);
    box.appendChild(label); box.appendChild(row);
    controls[name] = { slider: slider, number: number };
    return box;
  }

  function build(info) {
    about = info;
    $("profile-name").textContent = info.source + " · " + info.types.toLocaleString() + " task types";
    var sliders = $("sliders");
    sliders.innerHTML = "";
    var linked = fromHash();
    Object.keys(LABELS).forEach(function (name) {
      var value = name in linked ? linked[name] : info.defaults[name];
      if (info.ranges[name]) sliders.appendChild(control(name, info.ranges[name], value));
    });
    $("law-note").textContent = info.law
      ? "Batched server: step time " + info.law.law + " (docs/batching.md)."
      : "One query at a time (M/G/1). Start thinkq explore with --tau0 and --tau1 " +
        "(or a profile with a [server] table) to explore slots.";
    $("reset").addEventListener("click", function () {
      Object.keys(controls).forEach(function (name) {
        controls[name].slider.value = info.defaults[name];
        controls[name].number.value = info.defaults[name];
      });
      changed();
    });
    solveNow();
  }

  // the settings live in the address (#rate=0.37&alpha=30): a what-if can be linked to
  function fromHash() {
    var found = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (pair) {
      var parts = pair.split("=");
      if (parts.length === 2 && parts[0] in LABELS) found[parts[0]] = decodeURIComponent(parts[1]);
    });
    return found;
  }

  function toHash(settings) {
    var parts = Object.keys(controls).map(function (name) {
      return name + "=" + encodeURIComponent(String(settings[name]));
    });
    history.replaceState(null, "", "#" + parts.join("&"));
  }

  function settings() {
    var out = {}, bad = null;
    Object.keys(controls).forEach(function (name) {
      var text = controls[name].number.value.trim();
      var value = Number(text);
      if (text === "" || !isFinite(value)) bad = bad || name + ": enter a number";
      out[name] = value;
    });
    return bad ? { error: bad } : out;
  }

  function changed() {
    status("solving", "waiting…");
    clearTimeout(timer);
    timer = setTimeout(solveNow, DEBOUNCE_MS);
  }

  function solveNow() {
    var body = settings();
    if (body.error) { showError(body.error, "invalid"); return; }
    var id = ++sent;
    status("solving", "solving…");
    fetch("api/solve", { method: "POST", headers: { "Content-Type": "application/json" },
                         body: JSON.stringify(body) })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (reply) {
        if (id < shown) return;  // a later answer is already on the page
        shown = id;
        if (!reply.ok) { showError(reply.data.error || "the server refused these settings", "invalid"); return; }
        show(reply.data, id === sent);
      })
      .catch(function (err) { if (id === sent) showError("no answer from the server: " + err, "failed"); });
  }

  function showError(text, state) {
    P.message("message", text, "error");
    status(state, text);
  }

  function stat(label, value, title) {
    var tile = document.createElement("div");
    tile.className = "tq-stat";
    if (title) tile.title = title;
    var l = document.createElement("div"); l.className = "tq-label"; l.textContent = label;
    var v = document.createElement("div"); v.className = "tq-value"; v.textContent = value;
    tile.appendChild(l); tile.appendChild(v);
    return tile;
  }

  function show(data, latest) {
    var rate = controls.rate ? controls.rate.slider : null;
    if (rate && data.saturation_rate) rate.max = Math.max(data.saturation_rate, +controls.rate.number.value || 0);
    if (!data.stable) {
      P.message("message", "Unstable: " + data.message + ". Lower the rate (below " +
                fmt(data.saturation_rate) + "/s at these slots).", "warn");
      $("stats").innerHTML = "";
      P.message("frontier", "No frontier: the queue is unstable even with zero thinking tokens.", "info");
      P.message("budget-bars", "No budgets: the queue is unstable even with zero thinking tokens.", "info");
      $("budgets").querySelector("tbody").innerHTML = "";
      $("budget-summary").innerHTML = "";
      status("unstable", "unstable at these settings", data.settings);
      return;
    }
    $("message").innerHTML = "";
    if (!data.converged) {
      P.message("message", "The solver stopped before its tolerance (KKT residual " +
                fmt(data.kkt_residual) + " tokens): the budgets are its best so far.", "warn");
    }
    stats(data);
    frontier(data);
    budgets(data);
    if (latest) toHash(data.settings);
    status(latest ? "ok" : "solving", "solved", data.settings);
    // the time in a tooltip, not the text: screenshots of the same settings stay the same
    $("status").title = "solved in " + Math.round(1000 * data.seconds) + " ms";
  }

  function stats(data) {
    var box = $("stats");
    box.innerHTML = "";
    box.appendChild(stat("mean accuracy", fmt(data.accuracy)));
    box.appendChild(stat("J (objective)", fmt(data.objective), "alpha × mean accuracy − mean system time"));
    box.appendChild(stat("mean system time", fmt(data.mean_system_time) + " s"));
    box.appendChild(stat("p95 system time", data.p95_system_time === null ? "–" : fmt(data.p95_system_time) + " s",
                         data.percentile_method || ""));
    box.appendChild(stat("utilisation", fmt(data.utilization), data.mean_batch === null ? "rho" : "rho / C(B)"));
    if (data.mean_batch !== null && data.settings.slots > 1) {
      box.appendChild(stat("mean batch", fmt(data.mean_batch), "mean number of queries in service"));
    }
    box.appendChild(stat("budget per query", fmt(data.summary.mean_budget_per_query) + " tok",
                         "mean thinking tokens per query"));
  }

  function frontier(data) {
    var f = data.frontier;
    if (!f) {
      P.message("frontier", "No frontier at these settings: " + (data.frontier_error || "unknown"), "info");
      return;
    }
    var key = "p" + f.percentile + "_system_time";
    var mean = f.points.map(function (p) { return [p.mean_system_time, p.accuracy]; });
    var tail = f.points.map(function (p) { return [p[key], p.accuracy]; });
    var op = f.operating_point;
    P.lineChart("frontier", {
      height: 300, xLog: true, xLabel: "system time (s, log scale)", yLabel: "mean accuracy",
      series: [
        { name: "mean system time", points: mean, dots: true },
        { name: "p" + f.percentile + " system time", points: tail, dashed: true, dots: true }
      ],
      markers: [
        { x: op.mean_system_time, y: op.accuracy, label: "α = " + fmt(op.alpha, 3) + " (mean)" },
        { x: op[key], y: op.accuracy, label: "p" + f.percentile, color: "#dc2626", below: true }
      ]
    });
    $("frontier-note").textContent = f.points.length + " solves from α = 0; the trace ends where " +
      ({ saturated: "every type is at l_max", accuracy: "more alpha no longer buys accuracy",
         utilisation: "the utilisation reaches 0.95", alpha: "alpha reaches 1e300" }[f.stop] || f.stop) +
      ". Percentiles: " + f.percentile_method + ".";
  }

  function budgets(data) {
    var s = data.summary;
    $("budgets-title").textContent = data.shown === "all"
      ? "Budgets per task type"
      : s.types.toLocaleString() + " task types: a summary, and the " + data.rows.length +
        " with the largest shares of the queries";
    var summary = $("budget-summary");
    summary.innerHTML = "";
    if (data.shown !== "all") {
      var tiles = document.createElement("div");
      tiles.className = "tq-stats";
      [["task types", s.types], ["at zero", s.at_zero], ["at l_max", s.at_max],
       ["in between", s.in_between], ["total budget", s.total_budget]].forEach(function (pair) {
        tiles.appendChild(stat(pair[0], pair[1].toLocaleString()));
      });
      summary.appendChild(tiles);
      var histogram = document.createElement("div");
      summary.appendChild(histogram);
      P.barChart(histogram, {
        title: "Share of the queries by budget",
        xLabel: "share of the queries", format: function (v) { return fmt(v, 3) + " %"; },
        bars: s.histogram.map(function (bin) {
          var label = bin.high === 0 ? "0 tokens" : (bin.low + 1) + "–" + bin.high + " tokens";
          return { label: label, value: 100 * bin.share, note: "(" + bin.types.toLocaleString() + " types)",
                   color: P.palette[2] };
        })
      });
    }
    P.barChart("budget-bars", {
      xLabel: "thinking tokens per query",
      bars: data.rows.map(function (row) {
        return { label: row.name, value: row.budget, note: "(" + fmt(100 * row.share, 3) + " % of queries)" };
      })
    });
    var body = $("budgets").querySelector("tbody");
    body.innerHTML = "";
    data.rows.forEach(function (row) {
      var tr = document.createElement("tr");
      tr.dataset.task = row.name;
      tr.dataset.budget = String(row.budget);
      [row.name, fmt(row.share), String(row.budget), row.continuous_budget.toFixed(2),
       row.accuracy.toFixed(4), row.service_time.toFixed(4)].forEach(function (text, i) {
        var td = document.createElement("td");
        td.textContent = text;
        if (i === 2) td.className = "budget";
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  fetch("api/profile")
    .then(function (response) { return response.json(); })
    .then(build)
    .catch(function (err) { showError("cannot load the profile: " + err, "failed"); });
})();
