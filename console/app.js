/* crier console: one page, one view per path (/console/<view>), drawn from
 * crier's own JSON API with the session cookie. Every change sends the
 * session's CSRF token (X-CSRF-Token). Charts are uPlot's; every chart has
 * its figures in a table beside it, which a screen reader reads. */
"use strict";

(function () {
  const state = { csrf: "", scope: "", actor: "" };
  const view = document.getElementById("view");
  const title = document.getElementById("title");
  const COLORS = ["#0b5cad", "#c2410c", "#15803d", "#7c3aed", "#a4161a", "#0e7490"];

  /* ------------------------------------------------------------ helpers */

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const k of kids.flat()) {
      if (k === null || k === undefined) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }

  async function api(method, path, body) {
    const opts = { method, credentials: "same-origin", headers: {} };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = state.csrf;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    if (r.status === 401) {
      location.assign("/console/login");
      throw new Error("signed out");
    }
    const text = await r.text();
    let js = null;
    try { js = text ? JSON.parse(text) : null; } catch (e) { js = null; }
    if (!r.ok) {
      const msg = js && js.error ? js.error.message : r.status + " " + r.statusText;
      throw new Error(msg);
    }
    return js;
  }

  function problem(e) {
    return el("p", { class: "problem", role: "alert", text: String(e.message || e) });
  }

  function isoDay(d) { return d.toISOString().slice(0, 10); }

  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + " %"; }

  function num(x) { return x === null || x === undefined ? "–" : Number(x).toLocaleString("en"); }

  function secs(x) {
    if (x === null || x === undefined) return "–";
    if (x < 90) return x.toFixed(1) + " s";
    if (x < 5400) return (x / 60).toFixed(1) + " min";
    return (x / 3600).toFixed(1) + " h";
  }

  function csvCell(v) {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  /* A table of rows (objects) with columns [{key, label, num, link, fmt}],
   * a caption and a CSV download of exactly what it shows. */
  function table(caption, columns, rows, name) {
    const head = el("tr", {}, columns.map((c) => el("th", { scope: "col", class: c.num ? "num" : null, text: c.label })));
    const body = rows.map((r) =>
      el("tr", {}, columns.map((c) => {
        const v = c.fmt ? c.fmt(r[c.key], r) : r[c.key];
        const cell = el("td", { class: c.num ? "num" : null });
        if (c.link && r[c.key]) cell.append(el("a", { href: c.link(r), text: v }));
        else if (v instanceof Node) cell.append(v);
        else cell.textContent = v === null || v === undefined ? "" : String(v);
        return cell;
      })));
    const csv = () => {
      const lines = [columns.map((c) => csvCell(c.label)).join(",")];
      for (const r of rows) lines.push(columns.map((c) => csvCell(r[c.key])).join(","));
      const blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" });
      const a = el("a", { href: URL.createObjectURL(blob), download: (name || "table") + ".csv" });
      document.body.append(a);
      a.click();
      a.remove();
    };
    return el("div", { class: "card" },
      el("div", { class: "table-wrap" },
        el("table", {}, el("caption", { text: caption }), el("thead", {}, head), el("tbody", {}, body))),
      el("p", {}, el("button", { type: "button", class: "secondary", onclick: csv, "data-csv": name || "table" },
        "Download " + caption + " as CSV")));
  }

  /* A uPlot chart: x values and named series, drawn as lines or bars. The
   * figures are in the table next to it; the canvas is labelled. */
  function chart(label, x, series, opts) {
    // grouped bars: each category gets a slot per series (and a gap), so
    // the bars of one category stand side by side, not over each other
    if (opts && opts.bars && opts.categories && series.length > 1) {
      const k = series.length + 1;
      const slots = [];
      const names = [];
      opts.categories.forEach((c, i) => { for (let j = 0; j < k; j++) { slots.push(i * k + j); names.push(j === Math.floor(series.length / 2) ? c : ""); } });
      series = series.map((sr, j) => ({ label: sr.label, values: slots.map((x) => (x % k === j ? sr.values[Math.floor(x / k)] : null)) }));
      x = slots;
      opts = Object.assign({}, opts, { categories: names, grouped: true });
    }
    // stacked bars: each series drawn from zero to its running total, the
    // tallest first, so each shows as its own band of the bar
    if (opts && opts.stacked) {
      let run = x.map(() => 0);
      const tops = series.map((sr) => { run = run.map((v, i) => v + (sr.values[i] || 0)); return { label: sr.label, values: run.slice() }; });
      series = tops.reverse();
    }
    const box = el("figure", { class: "chart", role: "img", "aria-label": label, "data-chart": label });
    box.append(el("figcaption", { text: label }));
    const width = Math.max(300, Math.min(1100, view.clientWidth - 40));
    const bars = opts && opts.bars;
    const cats = opts && opts.categories;
    const o = {
      width, height: 260,
      scales: { x: { time: !cats } },
      axes: [
        cats ? { values: (u, ticks) => ticks.map((t) => cats[t] || ""), splits: () => cats.map((_, i) => i), grid: { show: false } } : {},
        {},
      ],
      series: [{}].concat(series.map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length],
        fill: bars ? COLORS[i % COLORS.length] + "cc" : null,
        paths: bars && uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [opts && opts.grouped ? 0.9 : 0.7, 60], align: 0 }) : undefined,
        points: { show: !bars },
      }))),
    };
    if (cats) o.scales.x.range = () => [-0.5, cats.length - 0.5];
    const data = [x].concat(series.map((s) => s.values));
    requestAnimationFrame(() => {
      const u = new uPlot(o, data, box);
      box.dataset.points = String(data.slice(1).reduce((n, s) => n + s.filter((v) => v !== null).length, 0));
      box.dataset.drawn = u ? "1" : "0";
    });
    return box;
  }

  function periodForm(params, onSubmit) {
    const from = el("input", { type: "date", id: "from", name: "from", value: params.from, required: true });
    const to = el("input", { type: "date", id: "to", name: "to", value: params.to, required: true });
    return el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); onSubmit(from.value, to.value); } },
      el("div", {}, el("label", { for: "from", text: "From" }), from),
      el("div", {}, el("label", { for: "to", text: "To (inclusive)" }), to),
      el("button", { type: "submit" }, "Show"));
  }

  function period() {
    const q = new URLSearchParams(location.search);
    const to = q.get("to") || isoDay(new Date());
    const from = q.get("from") || isoDay(new Date(Date.parse(to) - 29 * 86400000));
    return { from, to };
  }

  /* The API's [from, to) in instants: to is the day after the last day. */
  function range(p) {
    const end = new Date(Date.parse(p.to) + 86400000);
    return "from=" + encodeURIComponent(p.from + "T00:00:00Z") + "&to=" + encodeURIComponent(isoDay(end) + "T00:00:00Z");
  }

  function go(path) {
    history.pushState(null, "", path);
    route();
  }

  /* ------------------------------------------------------------ views */

  const FIGURES = [
    ["total", "Communications", num], ["sent", "Sent", num], ["delivered", "Delivered", num],
    ["delivery_rate", "Delivery rate", pct], ["open_rate", "Open rate", pct],
    ["click_through_rate", "Click-through rate", pct], ["response_rate", "Response rate", pct],
    ["failure_rate", "Failure rate", pct], ["fallback_rate", "Fallback rate", pct],
    ["avg_delivery_time_seconds", "Average delivery time", secs],
    ["avg_response_time_seconds", "Average response time", secs],
    ["cost_per_communication", "Cost per communication", (v) => v === null || v === undefined ? "–" : Number(v).toFixed(4)],
  ];

  async function overview() {
    title.textContent = "Overview";
    const p = period();
    const days = Math.round((Date.parse(p.to) - Date.parse(p.from)) / 86400000) + 1;
    const prev = { to: isoDay(new Date(Date.parse(p.from) - 86400000)), from: isoDay(new Date(Date.parse(p.from) - days * 86400000)) };
    view.replaceChildren(periodForm(p, (f, t) => go("/console/overview?from=" + f + "&to=" + t)));
    view.dataset.range = range(p);
    const [now, before] = await Promise.all([api("GET", "/v1/analytics/summary?" + range(p)), api("GET", "/v1/analytics/summary?" + range(prev))]);
    const s = summaryOf(now), b = summaryOf(before);
    const dl = el("dl", { class: "figures", id: "figures" }, FIGURES.map(([k, label, fmt]) => {
      const d = s[k], was = b[k];
      let change = "";
      if (typeof d === "number" && typeof was === "number") {
        const diff = d - was;
        const size = fmt === pct ? (100 * Math.abs(diff)).toFixed(1) + " pts" : fmt === num ? num(Math.abs(diff)) : fmt(Math.abs(diff));
        change = (diff > 0 ? "+" : diff < 0 ? "−" : "±") + size + " vs previous " + days + " days";
      }
      return el("div", { "data-figure": k, "data-value": d === null || d === undefined ? "" : String(d) },
        el("dt", { text: label }), el("dd", {}, fmt(d), el("span", { class: "change", text: change })));
    }));
    view.append(el("h2", { text: p.from + " to " + p.to }), dl);
    const daily = rowsOf(await api("GET", "/v1/analytics/breakdown?by=day&" + range(p)));
    view.append(el("h2", { text: "Sent and delivered per day" }),
      chart("Sent and delivered per day", daily.map((r) => Date.parse(r.key) / 1000), [
        { label: "Sent", values: daily.map((r) => r.sent) }, { label: "Delivered", values: daily.map((r) => r.delivered) }]),
      el("p", {}, el("a", { href: "/v1/analytics/summary?" + range(p) + "&format=csv", download: "summary.csv" }, "Download these figures as CSV"),
        " · ", el("a", { href: "/v1/analytics/report?" + range(p), download: "crier-overview.pdf", id: "pdf" }, "Download the overview as a PDF report")));
  }

  function summaryOf(js) { return js || {}; }
  /* A breakdown's rows, each with its group as key. */
  function rowsOf(js) { return ((js && js.rows) || []).map((r) => Object.assign({ key: r[js.by] }, r)); }

  async function channels() {
    title.textContent = "Channels";
    const p = period();
    view.replaceChildren(periodForm(p, (f, t) => go("/console/channels?from=" + f + "&to=" + t)));
    const rows = rowsOf(await api("GET", "/v1/analytics/breakdown?by=channel&" + range(p)));
    const cats = rows.map((r) => r.key);
    view.append(
      chart("Volume and outcomes by channel", cats.map((_, i) => i), [
        { label: "Sent", values: rows.map((r) => r.sent) }, { label: "Delivered", values: rows.map((r) => r.delivered) },
        { label: "Failed", values: rows.map((r) => r.failed) }], { bars: true, categories: cats }),
      table("Channel comparison", [
        { key: "key", label: "Channel" }, { key: "total", label: "Communications", num: true },
        { key: "sent", label: "Sent", num: true }, { key: "delivered", label: "Delivered", num: true },
        { key: "delivery_rate", label: "Delivery rate", num: true, fmt: pct },
        { key: "open_rate", label: "Open rate", num: true, fmt: pct },
        { key: "click_through_rate", label: "Click-through", num: true, fmt: pct },
        { key: "failed", label: "Failed", num: true }, { key: "cost_total", label: "Cost", num: true }], rows, "channels"));
  }

  async function timeline() {
    title.textContent = "Timeline";
    const p = period();
    view.replaceChildren(periodForm(p, (f, t) => go("/console/timeline?from=" + f + "&to=" + t)));
    const [byDay, byHour] = await Promise.all([
      api("GET", "/v1/analytics/breakdown?by=day&" + range(p)), api("GET", "/v1/analytics/breakdown?by=hour&" + range(p))]);
    const days = rowsOf(byDay);
    view.append(
      chart("Communications per day, stacked by status", days.map((r) => Date.parse(r.key) / 1000), [
        { label: "Delivered", values: days.map((r) => r.delivered) },
        { label: "Sent, not yet delivered", values: days.map((r) => r.sent - r.delivered) },
        { label: "Failed", values: days.map((r) => r.failed) },
        { label: "Waiting or skipped", values: days.map((r) => Math.max(0, r.total - r.sent - r.failed)) }], { bars: true, stacked: true }),
      table("Per day", [{ key: "key", label: "Day" }, { key: "total", label: "Communications", num: true },
        { key: "sent", label: "Sent", num: true }, { key: "delivered", label: "Delivered", num: true },
        { key: "failed", label: "Failed", num: true }], days, "per-day"));
    // the API's hours are hours of the range; folded here into hours of the day
    const hours = Array.from({ length: 24 }, (_, hr) => ({ key: String(hr).padStart(2, "0") + ":00", total: 0, delivered: 0 }));
    for (const r of rowsOf(byHour)) {
      const hr = Number(String(r.key).slice(11, 13));
      if (hr >= 0 && hr < 24) { hours[hr].total += r.total || 0; hours[hr].delivered += r.delivered || 0; }
    }
    view.append(
      chart("Communications by hour of the day (UTC)", hours.map((_, i) => i), [{ label: "Communications", values: hours.map((r) => r.total) }],
        { bars: true, categories: hours.map((r) => r.key) }),
      table("Per hour of the day (UTC)", [{ key: "key", label: "Hour" }, { key: "total", label: "Communications", num: true },
        { key: "delivered", label: "Delivered", num: true }], hours, "per-hour"));
  }

  async function funnel() {
    title.textContent = "Engagement funnel";
    const p = period();
    view.replaceChildren(periodForm(p, (f, t) => go("/console/funnel?from=" + f + "&to=" + t)));
    const s = summaryOf(await api("GET", "/v1/analytics/summary?" + range(p)));
    const steps = [["sent", "Sent"], ["delivered", "Delivered"], ["opened", "Opened"], ["clicked", "Clicked"], ["responded", "Responded"]];
    const rows = steps.map(([k, label], i) => ({ step: label, count: s[k] || 0, of_previous: i ? (s[steps[i - 1][0]] ? (s[k] || 0) / s[steps[i - 1][0]] : null) : null }));
    view.append(
      chart("Sent to responded", rows.map((_, i) => i), [{ label: "Communications", values: rows.map((r) => r.count) }], { bars: true, categories: rows.map((r) => r.step) }),
      table("Funnel", [{ key: "step", label: "Step" }, { key: "count", label: "Communications", num: true },
        { key: "of_previous", label: "Of the step before", num: true, fmt: pct }], rows, "funnel"));
  }

  async function preferences() {
    title.textContent = "Preferences";
    const js = await api("GET", "/v1/analytics/preferences");
    const pref = (js && js.preferred) || [];
    const outs = (js && js.opted_out) || [];
    view.replaceChildren(
      chart("Preferred channel of clients", pref.map((_, i) => i), [{ label: "Clients", values: pref.map((r) => r.clients) }], { bars: true, categories: pref.map((r) => r.channel) }),
      table("Preferred channels", [{ key: "channel", label: "Channel" }, { key: "clients", label: "Clients", num: true }], pref, "preferred-channels"),
      table("Opt-outs per channel", [{ key: "channel", label: "Channel" }, { key: "clients", label: "Clients opted out", num: true }], outs, "opt-outs"));
  }

  const COMM_COLUMNS = [
    { key: "communication_id", label: "Communication", link: (r) => "/console/communication?id=" + r.communication_id, fmt: (v) => v ? v.slice(0, 8) : "" },
    { key: "created_at", label: "Created" }, { key: "message_type", label: "Type" },
    { key: "channel", label: "Channel" }, { key: "status", label: "Status" },
    { key: "attempts", label: "Attempts", num: true },
    { key: "plan_id", label: "Plan", fmt: (v) => v ? v.slice(0, 8) : "" },
    { key: "client_id", label: "Client", link: (r) => "/console/client?id=" + r.client_id, fmt: (v) => v ? v.slice(0, 8) : "" },
  ];

  async function historyView() {
    title.textContent = "History";
    const q = new URLSearchParams(location.search);
    const field = (name, label, type, options) => {
      const input = options
        ? el("select", { id: "f-" + name, name }, el("option", { value: "", text: "any" }), options.map((o) => el("option", { value: o, text: o, selected: q.get(name) === o })))
        : el("input", { id: "f-" + name, name, type: type || "text", value: q.get(name) || "" });
      return el("div", {}, el("label", { for: "f-" + name, text: label }), input);
    };
    const form = el("form", { class: "filters", role: "search", onsubmit: (e) => {
      e.preventDefault();
      const p = new URLSearchParams();
      for (const [k, v] of new FormData(e.target)) if (v) p.set(k, v);
      go("/console/history?" + p.toString());
    } },
    field("plan_id", "Plan id"), field("client_id", "Client id"),
    field("message_type", "Type", null, ["welcome", "budget_summary", "vendor_options", "selection_confirmation", "blueprint_delivery", "error_notification", "reminder", "digest"]),
    field("status", "Status", null, ["pending", "queued", "sending", "sent", "delivered", "failed", "bounced", "skipped", "batched"]),
    field("since", "Since", "date"), field("until", "Until", "date"),
    el("button", { type: "submit" }, "Search"));
    view.replaceChildren(form);
    const p = new URLSearchParams();
    for (const k of ["plan_id", "client_id", "message_type", "status"]) if (q.get(k)) p.set(k, q.get(k));
    if (q.get("since")) p.set("since", q.get("since") + "T00:00:00Z");
    if (q.get("until")) p.set("until", q.get("until") + "T00:00:00Z");
    p.set("limit", "200");
    const js = await api("GET", "/v1/communications?" + p.toString());
    view.append(table("Communications found", COMM_COLUMNS, (js && js.communications) || [], "communications"));
  }

  async function communication() {
    const id = new URLSearchParams(location.search).get("id") || "";
    title.textContent = "Communication " + id.slice(0, 8);
    const c = await api("GET", "/v1/communications/" + encodeURIComponent(id));
    const facts = ["status", "message_type", "urgency", "channel", "attempts", "created_at", "send_at", "sent_at", "delivered_at", "opened_at", "clicked_at", "error_message", "review"];
    view.replaceChildren(
      el("dl", { class: "figures" }, facts.filter((k) => c[k] !== undefined && c[k] !== null).map((k) => el("div", {}, el("dt", { text: k.replace(/_/g, " ") }), el("dd", { text: String(c[k]) })))),
      el("p", {}, "Plan ", el("a", { href: "/console/history?plan_id=" + c.plan_id, text: c.plan_id }), " · client ", el("a", { href: "/console/client?id=" + c.client_id, text: c.client_id })));
    const d = c.decision || {};
    view.append(el("h2", { text: "Decision" }),
      el("p", { text: "Rules " + (d.rules_version || c.rules_version || "?") + ": " + (d.primary_channel || "none") + (d.fallback_channels && d.fallback_channels.length ? ", then " + d.fallback_channels.join(", ") : "") }));
    const trace = d.trace || c.trace || [];
    const step = (t) => typeof t === "string" ? t : (t.step || "step") + ": " + JSON.stringify(t.result) + (t.why ? " (" + t.why + ")" : "");
    if (trace.length) view.append(el("ol", { id: "trace", "aria-label": "Each rule step" }, trace.map((t) => el("li", { text: step(t) }))));
    view.append(el("h2", { text: "Attempts and events" }),
      el("ol", { class: "timeline", id: "events" }, (c.events || []).map((e) =>
        el("li", {}, el("time", { datetime: e.at, text: e.at }), (e.event_type || "") + (e.channel ? " · " + e.channel : "") + (e.attempt ? " · attempt " + e.attempt : "") + (e.status ? " → " + e.status : "")))));
    const [preview, callbacks] = await Promise.all([
      api("GET", "/v1/communications/" + encodeURIComponent(id) + "/preview").catch((e) => ({ error: e.message })),
      api("GET", "/v1/communications/" + encodeURIComponent(id) + "/callbacks")]);
    view.append(el("h2", { text: "The message" }));
    if (preview.error) view.append(problem(preview.error));
    else view.append(el("p", { text: "As the live templates (" + preview.templates_version_now + ") render it on " + preview.channel +
      (preview.template_version_sent ? "; it was sent with template version " + preview.template_version_sent : "") +
      ". The footer's links are placeholders." }),
      preview.subject ? el("p", {}, el("strong", { text: "Subject: " }), preview.subject) : null,
      el("pre", { id: "preview", tabindex: "0", "aria-label": "The message text", text: preview.text || "" }),
      preview.encoding ? el("p", { text: preview.encoding }) : null);
    view.append(table("Callbacks to the workflow", [{ key: "event_type", label: "Event" }, { key: "state", label: "State" },
      { key: "attempts", label: "Attempts", num: true }, { key: "created_at", label: "Raised" },
      { key: "delivered_at", label: "Delivered" }, { key: "last_error", label: "Last error" }], callbacks.callbacks || [], "callbacks"));
    if (c.review === "open") view.append(reviewButtons(c.communication_id));
  }

  async function client() {
    const id = new URLSearchParams(location.search).get("id") || "";
    title.textContent = "Client " + id.slice(0, 8);
    const [cl, prefs, comms] = await Promise.all([
      api("GET", "/v1/clients/" + encodeURIComponent(id)), api("GET", "/v1/clients/" + encodeURIComponent(id) + "/preferences"),
      api("GET", "/v1/clients/" + encodeURIComponent(id) + "/communications")]);
    view.replaceChildren(el("h2", { text: "Contact and consent" }), el("pre", { tabindex: "0", text: JSON.stringify(cl, null, 2) }),
      el("h2", { text: "Preferences" }), el("pre", { tabindex: "0", text: JSON.stringify(prefs, null, 2) }));
    if (state.scope === "admin") {
      const exp = el("button", { type: "button", class: "secondary", onclick: async () => {
        const js = await api("GET", "/v1/clients/" + encodeURIComponent(id) + "/export");
        const a = el("a", { href: URL.createObjectURL(new Blob([JSON.stringify(js, null, 2)], { type: "application/json" })), download: "client-" + id + ".json" });
        document.body.append(a); a.click(); a.remove();
      } }, "Export this client's data");
      const erase = el("button", { type: "button", onclick: async () => {
        if (!confirm("Erase this client? Their contact details and message contents go for good.")) return;
        await api("DELETE", "/v1/clients/" + encodeURIComponent(id));
        go("/console/client?id=" + id);
      } }, "Erase this client");
      view.append(el("p", {}, exp, " ", erase));
    }
    view.append(table("Communications", COMM_COLUMNS, (comms && comms.communications) || [], "client-communications"));
  }

  async function rules() {
    title.textContent = "Rules and templates";
    const [r, t] = await Promise.all([api("GET", "/v1/rules"), api("GET", "/v1/templates")]);
    view.replaceChildren(el("h2", { text: "Rules" }),
      el("p", { id: "rules-version", text: "Active version: " + (r.version || r.rules_version || "?") }),
      r.last_error || r.last_reload_error ? el("p", { class: "problem", text: "Last reload error: " + JSON.stringify(r.last_error || r.last_reload_error) }) : el("p", { class: "ok", text: "The last reload succeeded." }),
      el("h2", { text: "Templates" }), el("pre", { tabindex: "0", text: JSON.stringify(t, null, 2).slice(0, 4000) }));
    const sample = { request: { plan_id: "5b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d", client_id: "9c2e8f7a-6b5c-4d3e-9f1a-0b2c3d4e5f6a", message_type: "vendor_options", urgency: "normal",
      client: { email: "asha@example.com", timezone: "Asia/Kolkata", consent: { sms: true, whatsapp: true } }, context: { event_type: "wedding" } } };
    const text = el("textarea", { id: "dry-request", name: "request" }, JSON.stringify(sample, null, 2));
    const when = el("input", { id: "dry-now", name: "now", type: "datetime-local" });
    const out = el("div", { id: "dry-answer", "aria-live": "polite" });
    const form = el("form", { onsubmit: async (e) => {
      e.preventDefault();
      out.replaceChildren();
      try {
        const body = JSON.parse(text.value);
        if (when.value) body.now = new Date(when.value + "Z").toISOString().replace(/\.\d+Z$/, "Z");
        const ans = await api("POST", "/v1/rules/dry-run", body);
        const d = ans.decision || {};
        out.append(el("p", { class: "ok", text: "Decision: " + (d.primary_channel || "none") + ", send at " + (d.send_at || "now") }),
          el("ol", {}, (ans.trace || []).map((s) => el("li", { text: JSON.stringify(s) }))), el("pre", { tabindex: "0", text: JSON.stringify(ans, null, 2) }));
      } catch (err) { out.append(problem(err)); }
    } },
    el("h2", { text: "Dry run" }), el("label", { for: "dry-request", text: "Request (JSON, as the workflow would send it)" }), text,
    el("div", {}, el("label", { for: "dry-now", text: "Decide as if it were (UTC; empty: now)" }), when),
    el("p", {}, el("button", { type: "submit" }, "Decide")), out);
    view.append(form);
  }

  function reviewButtons(id) {
    const note = el("input", { id: "note-" + id, type: "text", name: "note" });
    const msg = el("span", { "aria-live": "polite" });
    const act = async (what) => {
      try {
        await api("POST", "/v1/communications/" + id + "/" + what, what === "resolve" ? { note: note.value } : undefined);
        msg.textContent = what === "retry" ? "Sent again." : "Resolved.";
        msg.className = "ok";
      } catch (e) { msg.textContent = e.message; msg.className = "problem"; }
    };
    return el("div", { class: "inline" },
      el("button", { type: "button", "data-retry": id, onclick: () => act("retry") }, "Retry"), " ",
      el("label", { for: "note-" + id, text: "Note" }), note, " ",
      el("button", { type: "button", class: "secondary", onclick: () => act("resolve") }, "Resolve"), " ", msg);
  }

  async function review() {
    title.textContent = "Review queue";
    const js = await api("GET", "/v1/communications?review=open&limit=200");
    const rows = (js && js.communications) || [];
    view.replaceChildren(el("p", { text: rows.length + " communication(s) wait for a person: every channel failed." }),
      table("Failed communications", COMM_COLUMNS.concat([{ key: "error_message", label: "Last error" },
        { key: "communication_id", label: "Actions", fmt: (v) => reviewButtons(v) }]), rows, "review-queue"));
  }

  /* ------------------------------------------------------------ routing */

  const VIEWS = { overview, channels, timeline, funnel, preferences, history: historyView, communication, client, rules, review };

  async function route() {
    const name = location.pathname.replace(/^\/console\/?/, "") || "overview";
    for (const a of document.querySelectorAll("nav a"))
      if (a.getAttribute("href") === "/console/" + name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    const fn = VIEWS[name] || overview;
    view.replaceChildren();
    try {
      await fn();
    } catch (e) {
      view.append(problem(e));
    }
    document.title = title.textContent + " · crier console";
    document.body.dataset.view = name;
    document.body.dataset.ready = "1";
  }

  document.addEventListener("click", (e) => {
    const a = e.target.closest("a");
    if (a && a.origin === location.origin && a.pathname.startsWith("/console/") && !a.hasAttribute("download") && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      document.body.dataset.ready = "0";
      go(a.pathname + a.search);
    }
  });
  window.addEventListener("popstate", route);

  document.getElementById("logout").addEventListener("click", async () => {
    try { await api("POST", "/console/logout"); } finally { location.assign("/console/login"); }
  });

  api("GET", "/console/session").then((s) => {
    state.csrf = s.csrf; state.scope = s.scope; state.actor = s.actor;
    document.getElementById("who").textContent = s.actor + " (" + s.scope + ")";
    return route();
  }).catch((e) => view.append(problem(e)));
})();
