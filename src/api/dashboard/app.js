// Vigil dashboard. Plain browser JavaScript, no build step; uPlot (window.uPlot) draws the trends.
// Data: one EventSource on api/events: "snapshot" (status and recent predictions) on connect,
// "records" (predictions and alert events as they are committed), "status" every 2 s.
// Everything from the gateway is shown with textContent: asset names come from MQTT topics.
(function () {
  "use strict";

  const SEVERITY_RANK = { critical: 0, error: 1, warning: 2, info: 3 };
  const COLOURS = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#319795", "#744210"];
  const CHART_HEIGHT = 140;

  const state = {
    token: null,
    status: null,
    historyPoints: 240,
    /** asset -> { asset, lastTs, series: Map(model -> series) } */
    assets: new Map(),
    /** "model|asset|rule" -> alert */
    alerts: new Map(),
    /** "asset|model" -> { plot, outputs } */
    charts: new Map(),
    updates: 0,
    source: null,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") {
      if (!Number.isFinite(v)) return String(v);
      const a = Math.abs(v);
      return a >= 100 ? v.toFixed(0) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
    }
    if (Array.isArray(v)) return "[" + v.map(fmt).join(" ") + "]";
    return String(v);
  }

  function time(ms) {
    return ms === undefined || ms === null ? "–" : new Date(ms).toLocaleTimeString();
  }

  function ago(ms) {
    if (ms === undefined || ms === null) return "";
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  function duration(s) {
    s = Math.round(s);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 172800) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d";
  }

  function bytes(n) {
    if (n === undefined || n === null) return "–";
    if (n < 1024) return n + " B";
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let v = n / 1024;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return v.toFixed(v < 10 ? 1 : 0) + " " + units[i];
  }

  function badge(id, text, kind) {
    const b = $(id);
    b.textContent = text;
    b.className = "badge" + (kind ? " " + kind : "");
  }

  function rows(tbody, items, build) {
    tbody.replaceChildren(...items.map(build));
  }

  function cell(text, className) {
    return el("td", className, text);
  }

  // ---- alerts ----------------------------------------------------------------------------

  const alertKey = (a) => a.model + "|" + a.asset + "|" + a.rule;

  function assetSeverity(asset) {
    let best = 99;
    for (const a of state.alerts.values())
      if (a.asset === asset) best = Math.min(best, SEVERITY_RANK[a.severity] ?? 4);
    return best;
  }

  function sortedAlerts() {
    return [...state.alerts.values()].sort(
      (a, b) =>
        (SEVERITY_RANK[a.severity] ?? 4) - (SEVERITY_RANK[b.severity] ?? 4) ||
        a.asset.localeCompare(b.asset) ||
        a.rule.localeCompare(b.rule),
    );
  }

  function renderAlerts() {
    const list = sortedAlerts();
    $("alert-count").textContent = String(list.length);
    $("no-alerts").hidden = list.length > 0;
    $("alerts").hidden = list.length === 0;
    rows($("alerts").tBodies[0], list, (a) => {
      const tr = el("tr", "alert-" + a.severity);
      tr.dataset.asset = a.asset;
      tr.dataset.rule = a.rule;
      tr.dataset.severity = a.severity;
      tr.append(
        cell(a.severity, "sev sev-" + a.severity),
        cell(a.asset),
        cell(a.rule + (typeof a.value === "number" ? " (" + fmt(a.value) + ")" : "")),
        cell(a.model),
        cell(a.since !== undefined && a.since !== null ? time(a.since) + " · " + ago(a.since) : "–"),
      );
      return tr;
    });
  }

  // ---- assets and trends -----------------------------------------------------------------

  function seriesFrom(s) {
    return {
      model: s.model,
      modelVersion: s.modelVersion,
      outputs: s.outputs.slice(),
      xs: s.points.map((p) => p.ts / 1000),
      ys: s.outputs.map((_, i) => s.points.map((p) => (p.values[i] === undefined ? null : p.values[i]))),
      latest: s.latest,
    };
  }

  function addPrediction(p) {
    let asset = state.assets.get(p.asset);
    if (!asset) {
      asset = { asset: p.asset, lastTs: p.ts, series: new Map() };
      state.assets.set(p.asset, asset);
    }
    asset.lastTs = Math.max(asset.lastTs, p.ts);
    let s = asset.series.get(p.model);
    if (!s) {
      s = { model: p.model, modelVersion: p.modelVersion, outputs: [], xs: [], ys: [], latest: p };
      asset.series.set(p.model, s);
    }
    for (const [name, v] of Object.entries(p.outputs)) {
      if (typeof v === "number" && !s.outputs.includes(name)) {
        s.outputs.push(name);
        s.ys.push(s.xs.map(() => null));
      }
    }
    s.modelVersion = p.modelVersion;
    s.latest = p;
    s.xs.push(p.ts / 1000);
    s.outputs.forEach((name, i) => {
      const v = p.outputs[name];
      s.ys[i].push(typeof v === "number" && Number.isFinite(v) ? v : null);
    });
    while (s.xs.length > state.historyPoints) {
      s.xs.shift();
      for (const y of s.ys) y.shift();
    }
  }

  function chartWidth(container) {
    return Math.max(260, (container.clientWidth || 320) - 4);
  }

  function makePlot(container, s) {
    // One point (or equal times) would make uPlot stretch the axis over years: pad it.
    const scales = {
      x: { time: true, range: (u, min, max) => (min === max ? [min - 30, max + 30] : [min, max]) },
    };
    const axes = [{ stroke: "#6b7785", grid: { stroke: "#eef1f4" } }];
    const series = [{}];
    s.outputs.forEach((name, i) => {
      const scale = i === 0 ? "y" : "y2";
      if (!scales[scale]) {
        scales[scale] = { auto: true };
        axes.push({
          scale,
          side: i === 0 ? 3 : 1,
          stroke: COLOURS[i % COLOURS.length],
          grid: { show: i === 0, stroke: "#eef1f4" },
          size: 48,
        });
      }
      series.push({ label: name, scale, stroke: COLOURS[i % COLOURS.length], width: 1.5, spanGaps: false });
    });
    return new uPlot(
      {
        width: chartWidth(container),
        height: CHART_HEIGHT,
        scales,
        axes,
        series,
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
      },
      [s.xs, ...s.ys],
      container,
    );
  }

  function renderSeries(card, asset, s) {
    const key = asset.asset + "|" + s.model;
    let block = card.querySelector('[data-model="' + CSS.escape(s.model) + '"]');
    if (!block) {
      block = el("div", "series");
      block.dataset.model = s.model;
      block.append(el("div", "model-line"), el("div", "outputs"), el("div", "chart"));
      card.append(block);
    }
    block.querySelector(".model-line").textContent =
      s.model + " " + s.modelVersion + " · latest " + time(s.latest.ts);
    const outputs = block.querySelector(".outputs");
    outputs.replaceChildren(
      ...Object.entries(s.latest.outputs).map(([k, v]) => {
        const o = el("span", "output");
        o.dataset.output = k;
        o.append(el("span", "k", k), el("span", "v", fmt(v)));
        return o;
      }),
    );
    const container = block.querySelector(".chart");
    let chart = state.charts.get(key);
    if (chart && chart.outputs !== s.outputs.join(",")) {
      chart.plot.destroy();
      state.charts.delete(key);
      chart = undefined;
    }
    if (!chart) {
      if (typeof uPlot !== "function") {
        container.textContent = "(plot library not loaded)";
        return;
      }
      container.replaceChildren();
      chart = { plot: makePlot(container, s), outputs: s.outputs.join(","), container };
      state.charts.set(key, chart);
    } else {
      chart.plot.setData([s.xs, ...s.ys]);
    }
  }

  function renderAssets() {
    const list = [...state.assets.values()].sort(
      (a, b) => assetSeverity(a.asset) - assetSeverity(b.asset) || a.asset.localeCompare(b.asset),
    );
    $("asset-count").textContent = String(list.length);
    $("no-assets").hidden = list.length > 0;
    const host = $("assets");
    const seen = new Set();
    for (const asset of list) {
      seen.add(asset.asset);
      let card = host.querySelector('.asset[data-asset="' + CSS.escape(asset.asset) + '"]');
      if (!card) {
        card = el("article", "asset");
        card.dataset.asset = asset.asset;
        const head = el("div", "asset-head");
        head.append(el("span", "asset-name", asset.asset), el("span", "asset-alert"));
        card.append(head);
      }
      const rank = assetSeverity(asset.asset);
      const worst = sortedAlerts().find((a) => a.asset === asset.asset);
      card.className = "asset" + (worst ? " alert-" + worst.severity : "");
      const tag = card.querySelector(".asset-alert");
      tag.textContent = worst ? worst.severity.toUpperCase() + " · " + worst.rule : "";
      tag.className = "asset-alert sev" + (worst ? " sev-" + worst.severity : "");
      card.dataset.severityRank = String(rank);
      host.append(card); // moves it into sorted position
      for (const s of [...asset.series.values()].sort((a, b) => a.model.localeCompare(b.model)))
        renderSeries(card, asset, s);
    }
    for (const card of [...host.children]) {
      if (!seen.has(card.dataset.asset)) card.remove();
    }
  }

  // ---- status panels ---------------------------------------------------------------------

  function kv(dl, pairs) {
    dl.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", "", k), el("dd", "", v)]));
  }

  function renderStatus(s) {
    state.status = s;
    document.title = "Vigil · " + s.gatewayId;
    $("gateway").textContent = s.gatewayId + " @ " + s.host;
    $("version").textContent = "v" + s.version + " · up " + duration(s.uptimeS) + " · log " + s.logLevel;
    if (s.ready.ok) badge("ready", "ready", "ok");
    else badge("ready", "not ready: " + s.ready.reasons.join("; "), "bad");
    if (!s.health.ok) badge("ready", "unhealthy: " + s.health.reasons.join("; "), "bad");
    badge(
      "broker",
      s.broker.connected ? "broker connected" : "broker disconnected",
      s.broker.connected ? "ok" : "bad",
    );

    const byKey = new Map();
    for (const a of s.alerts) {
      const prev = state.alerts.get(alertKey(a));
      byKey.set(alertKey(a), { ...a, value: prev ? prev.value : undefined });
    }
    state.alerts = byKey;

    rows($("models").tBodies[0], s.models, (m) => {
      const tr = el("tr");
      tr.dataset.model = m.name;
      tr.append(
        cell(m.name),
        cell(m.version),
        cell(m.state + (m.error ? " — " + m.error : ""), m.state === "failed" ? "error-text" : ""),
        cell(m.provider || "–"),
      );
      return tr;
    });

    const st = s.store;
    kv(
      $("store"),
      st
        ? [
            ["predictions", String(st.depth.prediction)],
            ["alerts", String(st.depth.alert)],
            ["events", String(st.depth.event)],
            ["record bytes", st.bytes ? bytes(st.bytes.prediction + st.bytes.alert + st.bytes.event) : "–"],
            ["on disk", bytes(st.fileBytes)],
            ["last seq", String(st.lastSeq)],
          ]
        : [["store", "not open"]],
    );
    const dests = s.sync.destinations;
    $("sync").hidden = dests.length === 0;
    rows($("sync").tBodies[0], dests, (d) => {
      const tr = el("tr");
      tr.append(
        cell(d.type + " " + d.url),
        cell(d.state),
        cell(d.lagRecords === undefined ? "–" : String(d.lagRecords), "num"),
        cell(d.lagSeconds ? duration(d.lagSeconds) : "–", "num"),
      );
      return tr;
    });
    if (dests.length === 0)
      $("store").append(el("dt", "", "sync"), el("dd", "", "no destinations configured"));

    $("loss-total").textContent = String(s.dataLoss.total);
    rows($("loss").tBodies[0], Object.entries(s.dataLoss.causes), ([cause, n]) => {
      const tr = el("tr");
      tr.dataset.cause = cause;
      tr.append(cell(cause.replace(/_/g, " ")), cell(String(n), "num" + (n > 0 ? " error-text" : "")));
      return tr;
    });

    const c = s.counters;
    if (c) {
      const rejected = Object.entries(c.rejected).filter(([, n]) => n > 0);
      kv($("ingest"), [
        ["payloads", String(c.payloads)],
        ["readings accepted", String(c.readingsAccepted)],
        ["rejected", rejected.length ? rejected.map(([k, n]) => k + " " + n).join(", ") : "none"],
        ["windows emitted", String(c.windows.emitted)],
        ["assets", String(c.assets)],
      ]);
    }
    $("footer").textContent = "status at " + time(s.ts) + " · " + state.updates + " live update(s)";
    renderAlerts();
  }

  // ---- data flow -------------------------------------------------------------------------

  let frame = 0;
  function redraw() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      renderAlerts();
      renderAssets();
    });
  }

  function onSnapshot(data) {
    state.historyPoints = data.feed.historyPoints || state.historyPoints;
    state.assets = new Map();
    for (const a of data.feed.assets) {
      const series = new Map();
      for (const s of a.series) series.set(s.model, seriesFrom(s));
      state.assets.set(a.asset, { asset: a.asset, lastTs: a.lastTs, series });
    }
    for (const c of state.charts.values()) c.plot.destroy();
    state.charts.clear();
    $("assets").replaceChildren();
    renderStatus(data.status);
    renderAssets();
  }

  function onRecords(update) {
    state.updates++;
    document.body.dataset.updates = String(state.updates);
    for (const p of update.predictions) addPrediction(p);
    $("footer").textContent =
      "status at " +
      time(state.status ? state.status.ts : undefined) +
      " · " +
      state.updates +
      " live update(s)";
    for (const a of update.alerts) {
      const key = alertKey(a);
      if (a.state === "raised") state.alerts.set(key, { ...a, since: a.ts });
      else state.alerts.delete(key);
    }
    redraw();
  }

  function authHeaders() {
    return state.token ? { authorization: "Bearer " + state.token } : {};
  }

  function connect() {
    if (state.source) state.source.close();
    const url = "api/events" + (state.token ? "?access_token=" + encodeURIComponent(state.token) : "");
    const source = new EventSource(url);
    state.source = source;
    source.addEventListener("open", () => {
      badge("live", "live", "ok");
      document.body.dataset.live = "1";
    });
    source.addEventListener("snapshot", (e) => onSnapshot(JSON.parse(e.data)));
    source.addEventListener("records", (e) => onRecords(JSON.parse(e.data)));
    source.addEventListener("status", (e) => {
      renderStatus(JSON.parse(e.data));
      redraw();
    });
    source.addEventListener("error", () => {
      document.body.dataset.live = "0";
      badge("live", "reconnecting…", "warn");
      if (source.readyState === EventSource.CLOSED) setTimeout(start, 3000);
    });
  }

  function askForToken() {
    const form = $("token-form");
    form.hidden = false;
    form.addEventListener(
      "submit",
      (e) => {
        e.preventDefault();
        state.token = $("token-input").value.trim();
        sessionStorage.setItem("vigil-token", state.token);
        form.hidden = true;
        start();
      },
      { once: true },
    );
  }

  async function start() {
    try {
      const res = await fetch("api/status", { headers: authHeaders(), cache: "no-store" });
      if (res.status === 401) {
        badge("live", "token needed", "warn");
        askForToken();
        return;
      }
      renderStatus(await res.json());
    } catch {
      badge("live", "gateway unreachable, retrying", "bad");
      setTimeout(start, 3000);
      return;
    }
    connect();
  }

  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const c of state.charts.values())
        c.plot.setSize({ width: chartWidth(c.container), height: CHART_HEIGHT });
    }, 150);
  });

  const params = new URLSearchParams(location.search);
  state.token = params.get("token") || sessionStorage.getItem("vigil-token");
  if (params.has("token")) history.replaceState(null, "", location.pathname);
  start();
})();
