import Foundation

/// The status page: one self-contained HTML document (inline CSS and JavaScript, charts drawn as inline SVG) that
/// polls `/status.json` every second. Server-supplied strings are only ever set through `textContent` (the model
/// name is also written into the document, escaped, so it shows before the first poll).
/// The API key, when the server has one, is typed into a field and kept in the page's memory only.
enum StatusPage {
    /// The page for a server whose model is served as `modelName`.
    static func html(modelName: String) -> String {
        let escaped = modelName
            .replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&#39;")
        return template.replacingOccurrences(of: "{{model}}", with: escaped)
    }

    private static let template = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{model}} · clipserve</title>
        <link rel="icon" href="data:,">
        <style>
        :root {
          --bg: #f4f6f9; --card: #fff; --ink: #1b2130; --muted: #687085; --line: #e4e7ee; --grid: #eef0f4;
          --blue: #2f6fed; --green: #14a37f; --amber: #e08a1e; --red: #d64545; --violet: #8a5cf6; --head: #151b28;
        }
        * { box-sizing: border-box; }
        body { margin: 0; background: var(--bg); color: var(--ink);
          font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
        header { display: flex; align-items: center; gap: 14px; padding: 12px 24px; background: var(--head); color: #fff; }
        header .brand { font-weight: 700; letter-spacing: .02em; opacity: .75; }
        header h1 { margin: 0; font-size: 20px; font-weight: 650; }
        header .arch { color: #aab3c5; font-size: 14px; }
        header .spacer { flex: 1; }
        header .uptime { color: #aab3c5; font-variant-numeric: tabular-nums; }
        .pill { display: inline-flex; align-items: center; gap: 6px; padding: 3px 10px; border-radius: 999px;
          font-size: 12px; font-weight: 600; background: #2a3244; color: #cfd6e4; }
        .pill::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: currentColor; }
        .pill.ok { background: rgba(20,163,127,.18); color: #3fd3a7; }
        .pill.warn { background: rgba(224,138,30,.2); color: #f4b25c; }
        .pill.bad { background: rgba(214,69,69,.22); color: #ff8a8a; }
        main { padding: 14px 24px 20px; display: grid; gap: 12px; }
        .card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
        .info { display: flex; flex-wrap: wrap; gap: 6px 28px; margin: 0; }
        .info div { display: flex; flex-direction: column; min-width: 0; }
        .info dt { font-size: 11px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
        .info dd { margin: 0; font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 460px; }
        .kpis { display: grid; grid-template-columns: repeat(6, 1fr); gap: 12px; }
        .kpi .label { font-size: 11px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
        .kpi .value { font-size: 26px; font-weight: 700; font-variant-numeric: tabular-nums; line-height: 1.2; }
        .kpi .value small { font-size: 13px; font-weight: 500; color: var(--muted); margin-left: 3px; }
        .kpi .sub { font-size: 12px; color: var(--muted); font-variant-numeric: tabular-nums; }
        .charts { display: grid; grid-template-columns: repeat(3, 1fr); gap: 12px; }
        .chart-card.wide { grid-column: span 2; }
        .chart-card h2 { margin: 0 0 4px; font-size: 13px; font-weight: 650; display: flex; gap: 12px; align-items: baseline; }
        .legend { display: inline-flex; gap: 10px; font-weight: 500; color: var(--muted); font-size: 12px; }
        .legend i { display: inline-block; width: 10px; height: 3px; border-radius: 2px; vertical-align: middle; margin-right: 4px; }
        svg.chart { display: block; width: 100%; height: 186px; }
        svg.chart text { font-size: 10px; fill: var(--muted); font-variant-numeric: tabular-nums; }
        svg.chart .grid { stroke: var(--grid); stroke-width: 1; }
        svg.chart .series { fill: none; stroke-width: 1.8; stroke-linejoin: round; stroke-linecap: round; }
        svg.chart .empty { font-size: 12px; }
        .bottom { display: grid; grid-template-columns: 5fr 7fr; gap: 12px; }
        .bottom > * { min-width: 0; }
        h3 { margin: 0 0 8px; font-size: 13px; font-weight: 650; }
        .drop { display: flex; align-items: center; gap: 12px; border: 2px dashed #c9cfdb; border-radius: 8px;
          padding: 10px 12px; cursor: pointer; color: var(--muted); min-height: 64px; }
        .drop.over { border-color: var(--blue); background: #eef3ff; }
        .drop img { width: 44px; height: 44px; object-fit: cover; border-radius: 6px; display: none; }
        .drop input { display: none; }
        .key { display: none; margin: 0 0 8px; gap: 8px; align-items: center; color: var(--muted); }
        .key input { flex: 1; padding: 5px 8px; border: 1px solid var(--line); border-radius: 6px; font: inherit; }
        .result { margin-top: 10px; display: none; }
        .stages { display: flex; height: 14px; border-radius: 4px; overflow: hidden; background: var(--grid); margin: 6px 0; }
        .stages span { display: block; height: 100%; }
        .stage-list { display: grid; grid-template-columns: repeat(5, auto); gap: 2px 14px; font-variant-numeric: tabular-nums; }
        .stage-list div { white-space: nowrap; }
        .stage-list b { display: block; font-weight: 600; }
        .stage-list i { display: inline-block; width: 8px; height: 8px; border-radius: 2px; margin-right: 4px; }
        .vector { margin-top: 6px; font: 12px ui-monospace, "DejaVu Sans Mono", monospace; color: var(--muted);
          white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
        .failure { color: var(--red); margin-top: 8px; display: none; }
        table { width: 100%; border-collapse: collapse; table-layout: fixed; }
        th { text-align: left; font-size: 11px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted);
          font-weight: 600; padding: 0 8px 6px 0; }
        td { padding: 5px 8px 5px 0; border-top: 1px solid var(--line); white-space: nowrap; overflow: hidden;
          text-overflow: ellipsis; font-variant-numeric: tabular-nums; }
        .status { display: inline-block; min-width: 34px; text-align: center; border-radius: 4px; padding: 0 5px;
          font-weight: 700; font-size: 12px; background: #fff1e0; color: #a85c00; }
        .status.s5 { background: #fde8e8; color: #b42323; }
        .errors-wrap { max-height: 168px; overflow: auto; }
        .none { color: var(--muted); padding: 6px 0; }
        </style>
        </head>
        <body>
        <header>
          <span class="brand">clipserve</span>
          <h1 id="model-name">{{model}}</h1>
          <span class="arch" id="architecture"></span>
          <span class="pill" id="readiness">connecting</span>
          <span class="spacer"></span>
          <span class="uptime" id="uptime"></span>
        </header>
        <main>
          <section class="card">
            <dl class="info" id="info">
              <div><dt>Backend</dt><dd id="info-backend">–</dd></div>
              <div><dt>Devices</dt><dd id="info-devices">–</dd></div>
              <div><dt>Precision</dt><dd id="info-precision">–</dd></div>
              <div><dt>Instances</dt><dd id="info-instances">–</dd></div>
              <div><dt>Max batch</dt><dd id="info-batch">–</dd></div>
              <div><dt>Embedding</dt><dd id="info-embedding">–</dd></div>
              <div><dt>Input</dt><dd id="info-input">–</dd></div>
            </dl>
          </section>
          <section class="kpis">
            <div class="card kpi"><div class="label">Images / s</div><div class="value" id="kpi-images" data-value="0">–</div><div class="sub" id="kpi-images-sub">&nbsp;</div></div>
            <div class="card kpi"><div class="label">Requests / s</div><div class="value" id="kpi-requests" data-value="0">–</div><div class="sub" id="kpi-requests-sub">&nbsp;</div></div>
            <div class="card kpi"><div class="label">Latency p50</div><div class="value" id="kpi-p50">–</div><div class="sub" id="kpi-p50-sub">&nbsp;</div></div>
            <div class="card kpi"><div class="label">Latency p99</div><div class="value" id="kpi-p99">–</div><div class="sub" id="kpi-p99-sub">&nbsp;</div></div>
            <div class="card kpi"><div class="label">Queue depth</div><div class="value" id="kpi-queue">–</div><div class="sub" id="kpi-queue-sub">&nbsp;</div></div>
            <div class="card kpi"><div class="label" id="kpi-util-label">Utilisation</div><div class="value" id="kpi-util">–</div><div class="sub" id="kpi-util-sub">&nbsp;</div></div>
          </section>
          <section class="charts" id="charts">
            <div class="card chart-card"><h2>Throughput <span class="legend"><span><i style="background:var(--blue)"></i>images/s</span><span><i style="background:repeating-linear-gradient(90deg,var(--green) 0 4px,transparent 4px 6px)"></i>requests/s</span></span></h2><svg class="chart" id="chart-throughput"></svg></div>
            <div class="card chart-card"><h2>Latency <span class="legend"><span><i style="background:var(--blue)"></i>p50 ms</span><span><i style="background:var(--violet)"></i>p99 ms</span></span></h2><svg class="chart" id="chart-latency"></svg></div>
            <div class="card chart-card"><h2>Queue depth <span class="legend"><span><i style="background:var(--amber)"></i>images waiting</span></span></h2><svg class="chart" id="chart-queue"></svg></div>
            <div class="card chart-card"><h2 id="chart-util-title">Utilisation <span class="legend"><span><i style="background:var(--green)"></i><span id="chart-util-legend">%</span></span></span></h2><svg class="chart" id="chart-util"></svg></div>
            <div class="card chart-card wide" id="chart-errors-card"><h2>Errors <span class="legend"><span><i style="background:var(--red)"></i>non-2xx answers/s</span></span></h2><svg class="chart" id="chart-errors"></svg></div>
            <div class="card chart-card" id="chart-memory-card" hidden><h2>GPU memory <span class="legend"><span><i style="background:var(--violet)"></i>GiB used</span></span></h2><svg class="chart" id="chart-memory"></svg></div>
          </section>
          <section class="bottom">
            <div class="card">
              <h3>Try an image</h3>
              <label class="key" id="key-row">API key <input type="password" id="api-key" autocomplete="off" placeholder="sent as Authorization: Bearer …, kept in this tab only"></label>
              <label class="drop" id="drop">
                <img id="preview" alt="">
                <span id="drop-text">Drop an image here, or click to choose one: it is embedded through <code>POST /embed</code>.</span>
                <input type="file" id="file" accept="image/*">
              </label>
              <div class="result" id="result">
                <div class="stages" id="stages"></div>
                <div class="stage-list" id="stage-list"></div>
                <div class="vector" id="vector"></div>
              </div>
              <div class="failure" id="failure"></div>
            </div>
            <div class="card">
              <h3>Recent errors <span class="legend" id="errors-total"></span></h3>
              <div class="errors-wrap">
                <table>
                  <colgroup><col style="width:78px"><col style="width:190px"><col style="width:56px"><col></colgroup>
                  <thead><tr><th>Time</th><th>Route</th><th>Status</th><th>Message</th></tr></thead>
                  <tbody id="errors"></tbody>
                </table>
                <div class="none" id="no-errors">No errors.</div>
              </div>
            </div>
          </section>
        </main>
        <script>
        "use strict";
        const $ = id => document.getElementById(id);
        const SVG = "http://www.w3.org/2000/svg";
        const COLORS = { blue: "#2f6fed", green: "#14a37f", amber: "#e08a1e", red: "#d64545", violet: "#8a5cf6" };
        let latest = null;

        function fmt(value, digits) {
          if (value === null || value === undefined || !isFinite(value)) return "–";
          if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en-US");
          return value.toFixed(digits);
        }
        function duration(seconds) {
          const s = Math.floor(seconds), h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
          return h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s % 60}s`;
        }
        function setText(id, text) { $(id).textContent = text; }
        function setValue(id, text, unit) {
          const el = $(id);
          el.textContent = text;
          if (unit) { const small = document.createElement("small"); small.textContent = unit; el.appendChild(small); }
        }
        function mean(values) {
          const v = values.filter(x => x !== null && x !== undefined);
          return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
        }
        function lastValue(values) {
          for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i];
          return null;
        }
        function niceMax(value) {
          if (!(value > 0)) return 1;
          const power = Math.pow(10, Math.floor(Math.log10(value)));
          for (const step of [1, 2, 4, 5, 10]) if (value <= step * power) return step * power;
          return 10 * power;
        }
        function el(name, attributes, text) {
          const node = document.createElementNS(SVG, name);
          for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
          if (text !== undefined) node.textContent = text;
          return node;
        }

        // One line chart over the whole history window; nulls leave gaps.
        function drawChart(svg, seconds, window, lines, options) {
          const width = Math.max(svg.clientWidth, 200), height = svg.clientHeight || 186;
          const left = 44, right = 8, top = 8, bottom = 18;
          const plotW = width - left - right, plotH = height - top - bottom;
          svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
          while (svg.firstChild) svg.removeChild(svg.firstChild);
          const end = seconds.length ? seconds[seconds.length - 1] + 1 : window;
          const start = end - window;
          let max = options.max || 0;
          for (const line of lines) for (const v of line.values) if (v !== null && v > max) max = v;
          max = options.fixedMax || niceMax(Math.max(max, options.minMax || 0));
          // Counts get whole numbers on the middle grid line too.
          if (options.integer && max % 2) max += 1;
          const x = s => left + (s + 1 - start) / window * plotW;
          const y = v => top + plotH - v / max * plotH;
          for (const f of [0, 0.5, 1]) {
            const gy = y(max * f);
            svg.appendChild(el("line", { class: "grid", x1: left, x2: left + plotW, y1: gy, y2: gy }));
            svg.appendChild(el("text", { x: left - 6, y: gy + 3, "text-anchor": "end" }, options.format(max * f)));
          }
          const step = window <= 60 ? 15 : 60;
          for (let ago = window; ago >= 0; ago -= step) {
            const gx = left + (window - ago) / window * plotW;
            const label = ago === 0 ? "now" : step === 60 ? `−${ago / 60} min` : `−${ago} s`;
            svg.appendChild(el("text", { x: gx, y: height - 4, "text-anchor": ago === window ? "start" : ago === 0 ? "end" : "middle" }, label));
          }
          let points = 0;
          lines.forEach((line, index) => {
            let d = "", pen = false, area = "", segmentStart = null, lastX = null;
            const dots = [];
            for (let i = 0; i < seconds.length; i++) {
              const v = line.values[i];
              if (seconds[i] < start || v === null || v === undefined) {
                if (pen && index === 0) area += `L${lastX.toFixed(1)},${y(0).toFixed(1)}L${segmentStart.toFixed(1)},${y(0).toFixed(1)}Z`;
                pen = false;
                continue;
              }
              // A point with no neighbour draws no line: mark it with a dot.
              const before = i > 0 ? line.values[i - 1] : null, after = i + 1 < seconds.length ? line.values[i + 1] : null;
              if ((before === null || before === undefined) && (after === null || after === undefined)) dots.push([x(seconds[i]), y(Math.min(v, max))]);
              const px = x(seconds[i]), py = y(Math.min(v, max));
              d += (pen ? "L" : "M") + px.toFixed(1) + "," + py.toFixed(1);
              if (index === 0) area += (pen ? "L" : `M${px.toFixed(1)},${y(0).toFixed(1)}L`) + px.toFixed(1) + "," + py.toFixed(1);
              if (!pen) segmentStart = px;
              lastX = px;
              pen = true;
              points++;
            }
            if (pen && index === 0) area += `L${lastX.toFixed(1)},${y(0).toFixed(1)}L${segmentStart.toFixed(1)},${y(0).toFixed(1)}Z`;
            if (index === 0 && area) svg.appendChild(el("path", { d: area, fill: line.color, "fill-opacity": 0.08 }));
            if (d) {
              const path = el("path", { class: "series", d, stroke: line.color, "data-name": line.name });
              if (line.dashed) path.setAttribute("stroke-dasharray", "4 3");
              svg.appendChild(path);
            }
            for (const [cx, cy] of dots) svg.appendChild(el("circle", { cx: cx.toFixed(1), cy: cy.toFixed(1), r: 2.5, fill: line.color }));
          });
          if (!points) svg.appendChild(el("text", { class: "empty", x: left + plotW / 2, y: top + plotH / 2, "text-anchor": "middle" }, "no data yet"));
          svg.dataset.points = String(points);
        }

        function renderInfo(server) {
          setText("model-name", server.model);
          document.title = `${server.model} · clipserve`;
          setText("architecture", [server.architecture || "custom ViT", server.tower].join(" · "));
          $("architecture").title = server.summary || "";
          setText("info-backend", server.backend || "–");
          setText("info-devices", server.devices);
          $("info-devices").title = server.devices;
          setText("info-precision", server.precision);
          setText("info-instances", String(server.instances));
          setText("info-batch", String(server.max_batch_size));
          setText("info-embedding", `${server.embedding_dimension} floats`);
          setText("info-input", `${server.image_size} × ${server.image_size} px`);
          $("key-row").style.display = server.auth_required ? "flex" : "none";
          const gpu = server.utilization_source === "gpu";
          setText("kpi-util-label", gpu ? "GPU utilisation" : "CPU utilisation");
          $("chart-util-title").firstChild.textContent = gpu ? "GPU utilisation " : "CPU utilisation ";
          setText("chart-util-legend", gpu ? "% busy (NVML)" : `% of ${server.cpu_cores} cores`);
          $("chart-memory-card").hidden = !gpu;
          $("chart-errors-card").classList.toggle("wide", !gpu);
        }

        function render(data) {
          latest = data;
          const s = data.series, server = data.server;
          renderInfo(server);
          const ready = $("readiness");
          ready.textContent = data.ready ? "ready" : data.readiness;
          ready.className = "pill " + (data.ready ? "ok" : "warn");
          setText("uptime", "up " + duration(data.uptime_seconds));

          const recent = k => s[k].slice(-5);
          const images = mean(recent("images_per_second")), requests = mean(recent("requests_per_second"));
          setValue("kpi-images", fmt(images, 1));
          $("kpi-images").dataset.value = String(images || 0);
          setText("kpi-images-sub", `${data.totals.images.toLocaleString("en-US")} in total · 5 s mean`);
          setValue("kpi-requests", fmt(requests, 1));
          $("kpi-requests").dataset.value = String(requests || 0);
          setText("kpi-requests-sub", `${data.totals.requests.toLocaleString("en-US")} in total`);
          const p50 = lastValue(s.latency_p50_ms.slice(-5)), p99 = lastValue(s.latency_p99_ms.slice(-5));
          setValue("kpi-p50", fmt(p50, 1), p50 === null ? "" : "ms");
          setValue("kpi-p99", fmt(p99, 1), p99 === null ? "" : "ms");
          setText("kpi-p50-sub", "latest second");
          setText("kpi-p99-sub", "latest second");
          setValue("kpi-queue", String(data.queue_depth));
          setText("kpi-queue-sub", `of ${server.max_queue_size.toLocaleString("en-US")} · now`);
          const util = lastValue(s.utilization);
          setValue("kpi-util", util === null ? "–" : (util * 100).toFixed(0), util === null ? "" : "%");
          setText("kpi-util-sub", server.utilization_source === "gpu" ? "mean over GPUs" : `of ${server.cpu_cores} cores`);

          // The whole history once the server has run that long; until then the minutes it has run.
          const span = s.second.length ? s.second[s.second.length - 1] + 1 : 0;
          const window = Math.min(data.history_seconds, Math.max(60, Math.ceil(span / 60) * 60));
          const count = v => Number.isInteger(v) ? String(v) : v.toFixed(1);
          const ms = v => v === 0 ? "0" : v >= 100 ? v.toFixed(0) : v.toFixed(1);
          drawChart($("chart-throughput"), s.second, window, [
            { name: "images", color: COLORS.blue, values: s.images_per_second },
            { name: "requests", color: COLORS.green, values: s.requests_per_second, dashed: true }], { format: count, minMax: 4, integer: true });
          drawChart($("chart-latency"), s.second, window, [
            { name: "p50", color: COLORS.blue, values: s.latency_p50_ms },
            { name: "p99", color: COLORS.violet, values: s.latency_p99_ms }], { format: ms, minMax: 1 });
          drawChart($("chart-queue"), s.second, window, [
            { name: "queue", color: COLORS.amber, values: s.queue_depth }], { format: count, minMax: 4, integer: true });
          drawChart($("chart-util"), s.second, window, [
            { name: "utilisation", color: COLORS.green, values: s.utilization.map(v => v === null ? null : v * 100) }],
            { format: v => v.toFixed(0) + "%", fixedMax: 100 });
          drawChart($("chart-errors"), s.second, window, [
            { name: "errors", color: COLORS.red, values: s.errors_per_second }], { format: count, minMax: 4, integer: true });
          if (server.utilization_source === "gpu") {
            const gib = s.memory_used_bytes.map(v => v === null ? null : v / 1073741824);
            const total = server.gpu_memory_total_bytes ? server.gpu_memory_total_bytes / 1073741824 : 0;
            drawChart($("chart-memory"), s.second, window, [{ name: "memory", color: COLORS.violet, values: gib }],
              { format: v => v.toFixed(v >= 10 ? 0 : 1), fixedMax: total || undefined, minMax: 1 });
          }
          renderErrors(data);
          document.body.dataset.loaded = "1";
        }

        function renderErrors(data) {
          const body = $("errors");
          while (body.firstChild) body.removeChild(body.firstChild);
          const errors = data.errors.slice().reverse();
          $("no-errors").style.display = errors.length ? "none" : "block";
          setText("errors-total", data.totals.errors ? `${data.totals.errors.toLocaleString("en-US")} since start` : "");
          for (const error of errors) {
            const row = document.createElement("tr");
            const time = new Date(error.time);
            const cells = [
              isNaN(time) ? error.time : time.toLocaleTimeString("en-GB"),
              `${error.method} ${error.route}`, String(error.status), error.message];
            cells.forEach((text, i) => {
              const cell = document.createElement("td");
              if (i === 2) {
                const badge = document.createElement("span");
                badge.className = "status" + (error.status >= 500 ? " s5" : "");
                badge.textContent = text;
                cell.appendChild(badge);
              } else {
                cell.textContent = text;
                cell.title = text;
              }
              row.appendChild(cell);
            });
            body.appendChild(row);
          }
        }

        let inFlight = false;
        async function refresh() {
          if (inFlight) return;
          inFlight = true;
          try {
            const response = await fetch("status.json", { cache: "no-store" });
            if (!response.ok) throw new Error(`HTTP ${response.status}`);
            render(await response.json());
          } catch (error) {
            const ready = $("readiness");
            ready.textContent = "unreachable";
            ready.className = "pill bad";
          } finally {
            inFlight = false;
          }
        }

        // The embedding box: one image through POST /embed, with the server's stage timings.
        async function embedFile(file) {
          const failure = $("failure");
          failure.style.display = "none";
          $("drop-text").textContent = `${file.name} · ${(file.size / 1024).toFixed(1)} KiB`;
          const preview = $("preview");
          preview.src = URL.createObjectURL(file);
          preview.style.display = "block";
          const headers = { "Content-Type": file.type && file.type.startsWith("image/") ? file.type : "application/octet-stream" };
          const key = $("api-key").value.trim();
          if (key) headers["Authorization"] = "Bearer " + key;
          const started = performance.now();
          try {
            const response = await fetch("embed", { method: "POST", headers, body: file });
            const total = performance.now() - started;
            const json = await response.json().catch(() => ({}));
            if (!response.ok) {
              const message = typeof json.error === "string" ? json.error : (json.error && json.error.message) || "";
              throw new Error(`HTTP ${response.status}${message ? ": " + message : ""}`);
            }
            const stage = name => parseFloat(response.headers.get(name)) || 0;
            const pre = stage("x-preprocess-time"), queue = stage("x-queue-time"), infer = stage("x-inference-time");
            const other = Math.max(total - pre - queue - infer, 0);
            const parts = [["preprocess", pre, COLORS.green], ["queue", queue, COLORS.amber],
              ["inference", infer, COLORS.blue], ["HTTP + transfer", other, "#aab3c5"]];
            const bar = $("stages"), list = $("stage-list");
            while (bar.firstChild) bar.removeChild(bar.firstChild);
            while (list.firstChild) list.removeChild(list.firstChild);
            for (const [name, value, color] of parts) {
              const span = document.createElement("span");
              span.style.width = `${(value / Math.max(total, 1e-6) * 100).toFixed(2)}%`;
              span.style.background = color;
              span.title = `${name} ${value.toFixed(2)} ms`;
              bar.appendChild(span);
            }
            for (const [name, value, color] of parts.concat([["round trip", total, "#1b2130"]])) {
              const item = document.createElement("div");
              const swatch = document.createElement("i");
              swatch.style.background = color;
              item.appendChild(swatch);
              item.appendChild(document.createTextNode(name));
              const strong = document.createElement("b");
              strong.textContent = `${value.toFixed(2)} ms`;
              item.appendChild(strong);
              list.appendChild(item);
            }
            const embedding = (json.embeddings && json.embeddings[0]) || [];
            $("vector").textContent = `${json.dimensions} dimensions · batch ${response.headers.get("x-batch-size") || "?"} · [` +
              embedding.slice(0, 8).map(v => v.toFixed(4)).join(", ") + (embedding.length > 8 ? ", …]" : "]");
            $("result").style.display = "block";
          } catch (error) {
            $("result").style.display = "none";
            failure.textContent = error.message;
            failure.style.display = "block";
          }
          refresh();
        }

        const drop = $("drop");
        $("file").addEventListener("change", event => { if (event.target.files[0]) embedFile(event.target.files[0]); });
        drop.addEventListener("dragover", event => { event.preventDefault(); drop.classList.add("over"); });
        drop.addEventListener("dragleave", () => drop.classList.remove("over"));
        drop.addEventListener("drop", event => {
          event.preventDefault();
          drop.classList.remove("over");
          if (event.dataTransfer.files[0]) embedFile(event.dataTransfer.files[0]);
        });
        window.addEventListener("resize", () => { if (latest) render(latest); });
        refresh();
        setInterval(refresh, 1000);
        </script>
        </body>
        </html>
        """#
}
