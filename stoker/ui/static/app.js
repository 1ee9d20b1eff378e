// stoker dashboard: draws the charts from the JSON a page embeds, and keeps a
// running run's page live by polling. All user text reaches the page through
// textContent or uPlot (which uses textContent and canvas), never innerHTML.
(function () {
  "use strict";
  var COLORS = ["#2f6fdb", "#d9480f", "#2f855a", "#9c36b5", "#c53030", "#0b7285",
    "#b7791f", "#5c7cfa", "#e64980", "#495057"];
  var POLL_MS = 1000;

  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }
  function nums(a) { return (a || []).map(num); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function width(container) {
    var w = container.clientWidth || 900;
    return Math.max(320, Math.min(560, Math.floor(w / 2) - 24));
  }

  // One chart: x values and series [{label, values, color, dash, band: [lo, hi]}].
  function plot(container, title, xLabel, x, series, extra) {
    var box = el("div", "chart");
    box.dataset.title = title;
    container.appendChild(box);
    var opts = {
      title: title, width: width(container), height: 220,
      scales: { x: { time: false } },
      series: [{ label: xLabel }],
      axes: [{ label: xLabel }, {}],
      bands: [],
    };
    var rows = [x];
    series.forEach(function (s, i) {
      opts.series.push({
        label: s.label, stroke: s.color || COLORS[i % COLORS.length],
        width: s.width || 1.5, dash: s.dash, spanGaps: true,
        // Few x values (a metric logged once per run): a line alone would not show.
        fill: s.fill, points: { show: s.points === true || x.length <= 30, size: 7 },
        scale: s.scale || "y",
      });
      rows.push(s.values);
    });
    (extra && extra.bands || []).forEach(function (b) { opts.bands.push(b); });
    if (extra && extra.axes) opts.axes = opts.axes.concat(extra.axes);
    if (extra && extra.plugins) opts.plugins = extra.plugins;
    if (extra && extra.xRange) opts.scales.x.range = extra.xRange;
    var u = new uPlot(opts, rows, box);
    return u;
  }

  // A downsampled series: its last values as a line, min..max as a shaded band.
  function bucketSeries(s, label, color) {
    return [
      { label: label, values: nums(s.last), color: color },
      { label: label + " max", values: nums(s.max), color: color + "55", width: 0.5 },
      { label: label + " min", values: nums(s.min), color: color + "55", width: 0.5 },
    ];
  }

  function drawSeriesCharts(container, charts, plots) {
    Object.keys(charts).sort().forEach(function (key, i) {
      var s = charts[key];
      var color = COLORS[i % COLORS.length];
      var series = bucketSeries(s, key, color);
      var rows = [s.step].concat(series.map(function (x) { return x.values; }));
      var title = key + "  (" + s.count + (s.count === 1 ? " point" : " points") +
        (s.nan_count ? ", " + s.nan_count + " NaN" : "") + ")";
      if (plots[key]) {
        plots[key].setData(rows);
        var t = plots[key].root.querySelector(".u-title");
        if (t) t.textContent = title;
        return;
      }
      plots[key] = plot(container, title, "step", s.step, series,
        { bands: [{ series: [2, 3], fill: color + "22" }] });
      plots[key].root.parentNode.classList.add("buckets");
    });
  }

  // Tuning decisions (workers="auto", ...): colour per setting, on every loader chart.
  var DECISION_COLORS = { workers: "#9c36b5", max_queue_size: "#0b7285", mode: "#c53030" };
  function decisionColor(d) { return DECISION_COLORS[d.setting] || "#495057"; }
  function decisionLabel(d) {
    return String(d.setting) + " " + JSON.stringify(d.from) + " → " + JSON.stringify(d.to);
  }

  // A uPlot plugin: a dashed vertical line at each decision's time, labelled on the
  // canvas (text on a canvas is never markup). ``state.decisions`` is read at every
  // draw, so a live refresh that brings new decisions redraws them.
  function decisionMarkers(state) {
    return { hooks: { draw: function (u) {
      var ctx = u.ctx, box = u.bbox, px = window.devicePixelRatio || 1, drawn = 0;
      ctx.save();
      ctx.font = Math.round(10 * px) + "px sans-serif";
      ctx.lineWidth = px;
      ctx.setLineDash([4 * px, 3 * px]);
      state.decisions.forEach(function (d, i) {
        var t = num(d.t);
        if (t === null) return;
        var x = u.valToPos(t, "x", true);
        if (x < box.left - 1 || x > box.left + box.width + 1) return;
        ctx.strokeStyle = ctx.fillStyle = decisionColor(d);
        ctx.beginPath();
        ctx.moveTo(x, box.top);
        ctx.lineTo(x, box.top + box.height);
        ctx.stroke();
        // Staggered, so that decisions close in time keep readable labels.
        ctx.fillText(decisionLabel(d), x + 3 * px, box.top + (11 + 12 * (i % 3)) * px);
        drawn++;
      });
      ctx.restore();
      u.root.parentNode.dataset.markers = String(drawn);
    } } };
  }

  function fillDecisions(box, ld) {
    var decisions = ld.decisions || [];
    var auto = (ld.settings && ld.settings.auto) || [];
    box.textContent = "";
    box.dataset.count = String(decisions.length);
    if (!decisions.length) {
      if (auto.length) box.appendChild(el("p", "hint", auto.join(", ") + " on auto: " +
        "no decision reported yet (a loader reports them when an epoch ends)"));
      return;
    }
    var table = el("table", "decisions");
    table.appendChild(el("caption", null, "tuning decisions (" + decisions.length + ")"));
    var head = el("tr");
    ["at batch", "at", "setting", "from → to", "why"].forEach(function (h) {
      head.appendChild(el("th", null, h));
    });
    table.appendChild(el("thead")).appendChild(head);
    var body = el("tbody");
    decisions.forEach(function (d) {
      var tr = el("tr");
      tr.style.borderLeft = "3px solid " + decisionColor(d);
      tr.appendChild(el("td", "num", d.at_batch));
      tr.appendChild(el("td", "num", num(d.at_s) === null ? "" : d.at_s.toFixed(2) + " s"));
      tr.appendChild(el("td", null, d.setting));
      tr.appendChild(el("td", null, JSON.stringify(d.from) + " → " + JSON.stringify(d.to)));
      tr.appendChild(el("td", "why", d.why));
      body.appendChild(tr);
    });
    table.appendChild(body);
    box.appendChild(table);
  }

  function drawLoaders(container, loaders, plots) {
    var none = container.querySelector(".empty");
    if (!loaders.length && !none) {
      container.appendChild(el("p", "empty", "No loader reported to this run."));
    } else if (loaders.length && none) {
      none.remove();
    }
    loaders.forEach(function (ld) {
      var t = ld.timeline, key = ld.loader_key;
      var rowsA = [t.t, nums(t.throughput_bps), nums(t.wait_fraction)];
      var rowsB = [t.t, nums(t.produce_mean_s), nums(t.produce_max_s),
        nums(t.wait_mean_s), nums(t.wait_max_s)];
      var rowsC = [t.t, nums(t.queue_depth)];
      var p = plots[key];
      if (p) {
        p.state.decisions = ld.decisions || [];
        p.a.setData(rowsA); p.b.setData(rowsB); p.c.setData(rowsC);
        fillVerdict(p.verdict, ld);
        fillDecisions(p.decisionBox, ld);
        return;
      }
      var panel = el("div", "loader-panel");
      panel.dataset.loader = key;
      panel.appendChild(el("h3", null, "loader " + key + " · " + ld.batches + " batches"));
      var verdict = el("p");
      panel.appendChild(verdict);
      fillVerdict(verdict, ld);
      var decisionBox = el("div", "decision-list");
      panel.appendChild(decisionBox);
      fillDecisions(decisionBox, ld);
      var charts = el("div", "charts");
      panel.appendChild(charts);
      container.appendChild(panel);
      var state = { decisions: ld.decisions || [] };
      // From 0 (the loader's start) to the last bucket or decision, so a decision
      // taken before the first bucket ended still has its place on the axis.
      var xRange = function (u, lo, hi) {
        var last = state.decisions.reduce(function (m, d) {
          return num(d.t) === null ? m : Math.max(m, d.t);
        }, hi === null ? 0 : hi);
        return [0, last > 0 ? last : 1];
      };
      var extra = function (more) {
        var out = { plugins: [decisionMarkers(state)], xRange: xRange };
        Object.keys(more || {}).forEach(function (k) { out[k] = more[k]; });
        return out;
      };
      plots[key] = {
        verdict: verdict, decisionBox: decisionBox, state: state,
        a: plot(charts, "throughput and wait fraction", "s", t.t, [
          { label: "batches/s", values: rowsA[1] },
          { label: "wait fraction", values: rowsA[2], scale: "frac", color: COLORS[1] },
        ], extra({ axes: [{ scale: "frac", side: 1, grid: { show: false } }] })),
        b: plot(charts, "produce time vs consumer wait (s)", "s", t.t, [
          { label: "produce mean", values: rowsB[1], color: COLORS[0] },
          { label: "produce max", values: rowsB[2], color: COLORS[0] + "77", dash: [4, 3] },
          { label: "wait mean", values: rowsB[3], color: COLORS[1] },
          { label: "wait max", values: rowsB[4], color: COLORS[1] + "77", dash: [4, 3] },
        ], extra()),
        c: plot(charts, "queue depth", "s", t.t, [
          { label: "batches waiting", values: rowsC[1], color: COLORS[2] },
        ], extra()),
      };
    });
  }

  function fillVerdict(p, ld) {
    var s = ld.summary || {};
    p.textContent = "";
    p.appendChild(el("span", "verdict", s.verdict ? "Verdict: " + s.verdict : "No verdict yet"));
    if (s.advice) p.appendChild(el("span", "advice", " — " + s.advice));
    // An "auto" setting was recorded at its starting value: show where it ended.
    var auto = (ld.settings && ld.settings.auto) || [];
    var ended = { workers: "workers", max_queue_size: "max_queue_size", use_multiprocessing: "mode" };
    var settings = Object.keys(ld.settings || {}).map(function (k) {
      if (auto.indexOf(k) < 0) return k + "=" + JSON.stringify(ld.settings[k]);
      var end = s[ended[k]];
      return k + "=auto" + (end === undefined || end === null ? "" : " (now " + JSON.stringify(end) + ")");
    }).join(", ");
    if (settings) p.appendChild(el("span", "advice", " (" + settings + ")"));
  }

  function fmtDuration(s) {
    if (typeof s !== "number") return "";
    if (s < 60) return s.toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
  }

  function runPage() {
    var d = data("run-data");
    if (!d) return;
    var plots = { metric: {}, system: {}, loader: {} };
    var metricBox = document.getElementById("metric-charts");
    var systemBox = document.getElementById("system-charts");
    var loaderBox = document.getElementById("loader-panels");
    function draw(d) {
      drawSeriesCharts(metricBox, d.metrics, plots.metric);
      drawSeriesCharts(systemBox, d.system, plots.system);
      drawLoaders(loaderBox, d.loaders, plots.loader);
      var status = document.getElementById("status");
      status.textContent = d.status;
      status.className = "status " + d.status;
      var dur = document.getElementById("duration");
      if (dur) dur.textContent = fmtDuration(d.duration_s);
      document.body.dataset.status = d.status;
      document.body.dataset.points = String(Object.keys(d.metrics).reduce(function (n, k) {
        return n + d.metrics[k].count;
      }, 0));
    }
    draw(d);
    var live = data("run-live");
    if (!live || !live.url || d.status !== "running") return;
    var busy = false;
    var timer = setInterval(function () {
      if (busy) return;
      busy = true;
      fetch(live.url, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (next) {
          if (!next) return;
          draw(next);
          document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
          if (next.status !== "running") clearInterval(timer);
        })
        .catch(function () {})
        .then(function () { busy = false; });
    }, POLL_MS);
  }

  function option(select, value, label) {
    var o = el("option", null, label === undefined ? value : label);
    o.value = value;
    select.appendChild(o);
  }

  function comparePage() {
    var d = data("compare-data");
    if (!d) return;
    var box = document.getElementById("compare-charts");
    Object.keys(d.metrics).sort().forEach(function (key) {
      var xs = {};
      d.metrics[key].forEach(function (s) { (s ? s.step : []).forEach(function (x) { xs[x] = 1; }); });
      var x = Object.keys(xs).map(Number).sort(function (a, b) { return a - b; });
      var series = d.runs.map(function (r, i) {
        var s = d.metrics[key][i], at = {};
        if (s) s.step.forEach(function (st, j) { at[st] = num(s.last[j]); });
        return { label: r.name + " #" + r.id, values: x.map(function (v) { return v in at ? at[v] : null; }) };
      });
      plot(box, key, "step", x, series);
    });
    scaling(d);
  }

  function scaling(d) {
    var xs = document.getElementById("scale-x"), gs = document.getElementById("scale-group");
    var ys = document.getElementById("scale-y"), ideal = document.getElementById("scale-ideal");
    var box = document.getElementById("scaling-chart");
    var keys = d.param_keys;
    var numeric = keys.filter(function (k) {
      return d.runs.every(function (r) { return typeof r.params[k] === "number"; });
    });
    var preferred = numeric.indexOf("workers") >= 0 ? "workers" :
      (numeric.filter(function (k) { return d.differing.indexOf(k) >= 0; })[0] || numeric[0]);
    numeric.forEach(function (k) { option(xs, k); });
    if (preferred) xs.value = preferred;
    option(gs, "", "(none)");
    keys.forEach(function (k) { option(gs, k); });
    var others = d.differing.filter(function (k) { return k !== preferred; });
    if (others.length) gs.value = others[0];
    option(ys, "duration_s", "run duration (s)");
    option(ys, "epoch_time_s", "loader epoch time (s)");
    option(ys, "throughput_bps", "loader throughput (batches/s)");
    var metricKeys = {};
    d.runs.forEach(function (r) { Object.keys(r.metrics).forEach(function (k) { metricKeys[k] = 1; }); });
    Object.keys(metricKeys).sort().forEach(function (k) { option(ys, "metric:" + k, k); });
    function yOf(r) {
      var y = ys.value;
      if (y.indexOf("metric:") === 0) return num(r.metrics[y.slice(7)]);
      return num(r[y]);
    }
    function draw() {
      box.textContent = "";
      if (!xs.value) { box.appendChild(el("p", "empty", "No numeric param to put on x.")); return; }
      var groups = {}, allX = {};
      d.runs.forEach(function (r) {
        var x = r.params[xs.value], y = yOf(r);
        if (typeof x !== "number" || y === null) return;
        var gv = gs.value ? r.params[gs.value] : "all runs";
        var g = typeof gv === "string" ? gv : JSON.stringify(gv);
        (groups[g] = groups[g] || {})[x] = (groups[g][x] || []).concat([y]);
        allX[x] = 1;
      });
      var x = Object.keys(allX).map(Number).sort(function (a, b) { return a - b; });
      var names = Object.keys(groups).sort();
      var series = names.map(function (g) {
        return { label: g, points: true, values: x.map(function (v) {
          var ys_ = groups[g][v];
          return ys_ ? ys_.reduce(function (a, b) { return a + b; }, 0) / ys_.length : null;
        }) };
      });
      var mode = ideal.value;
      if (mode === "auto") mode = /duration|time|_s$|loss/.test(ys.value) ? "time" : "rate";
      if (mode !== "none" && series.length && x.length > 1) {
        var base = null;
        series.forEach(function (s) { if (base === null && s.values[0] !== null) base = s.values[0]; });
        if (base !== null) series.push({
          label: "ideal", color: "#888", dash: [6, 4],
          values: x.map(function (v) { return mode === "time" ? base * x[0] / v : base * v / x[0]; }),
        });
      }
      plot(box, ys.options[ys.selectedIndex].textContent + " against " + xs.value, xs.value, x, series);
    }
    [xs, gs, ys, ideal].forEach(function (s) { s.addEventListener("change", draw); });
    draw();
  }

  function benchPage() {
    document.querySelectorAll("section.sweep").forEach(function (sec) {
      var d = JSON.parse(sec.querySelector(".bench-data").textContent);
      var keys = Object.keys(d.curves).sort(), xs = {};
      keys.forEach(function (k) { d.curves[k].step.forEach(function (s) { xs[s] = 1; }); });
      var x = Object.keys(xs).map(Number).sort(function (a, b) { return a - b; });
      var series = keys.map(function (k) {
        var at = {};
        d.curves[k].step.forEach(function (s, j) { at[s] = num(d.curves[k].last[j]); });
        return { label: k.replace(/\.batches_per_s$/, ""), points: true,
          values: x.map(function (v) { return v in at ? at[v] : null; }) };
      });
      plot(sec.querySelector(".bench-chart"), "batches/s against workers", "workers", x, series);
    });
  }

  function confirmDanger() {
    document.querySelectorAll("button.danger").forEach(function (b) {
      b.form.addEventListener("submit", function (e) {
        if (!window.confirm("Delete this run and everything it recorded?")) e.preventDefault();
      });
    });
  }

  function compareButton() {
    var form = document.getElementById("compare-form");
    if (!form) return;
    form.addEventListener("submit", function (e) {
      if (form.querySelectorAll("input[name=ids]:checked").length < 2) {
        e.preventDefault();
        alert("Tick at least two runs to compare.");
      }
    });
  }

  runPage();
  comparePage();
  benchPage();
  compareButton();
  confirmDanger();
})();
