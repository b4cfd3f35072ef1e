"use strict";
// vr1 cold-start inspector. Every piece of data is inserted with textContent (never innerHTML): model text
// that contains <script> or <img onerror> shows as text.
const PAGE = 50;
const state = { ov: null, rows: [], loaded: 0, details: {}, pending: null, results: [], page: 0, selected: null };
const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") e.textContent = v; else if (k === "cls") e.className = v;
    else if (k === "style") Object.assign(e.style, v); else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  return e;
}
function loadScript(src) { document.body.appendChild(el("script", { src })); }
const pad = (k) => String(k).padStart(4, "0");
const VERDICT = { k: "kept", d: "dropped", f: "failed" };

window.VR1 = {
  overview(ov) {
    state.ov = ov;
    renderOverview(ov);
    if (ov.index_chunks > 0) loadScript(`data/index-${pad(0)}.js`);
    else applyFilters();
  },
  index(payload) {
    for (const r of payload.rows) state.rows.push(r);
    state.loaded += 1;
    if (state.loaded < state.ov.index_chunks) loadScript(`data/index-${pad(state.loaded)}.js`);
    applyFilters(true);
  },
  detail(payload) {
    state.details[payload.chunk] = payload.samples;
    if (state.pending != null && Math.floor(state.pending / state.ov.detail_chunk) === payload.chunk) {
      const i = state.pending; state.pending = null; showDetail(i);
    }
  },
};

function renderOverview(ov) {
  $("run").textContent = ov.run;
  const totals = $("totals");
  totals.appendChild(el("div", { cls: "card" }, el("b", { text: String(ov.total) }), "samples"));
  for (const v of ["kept", "dropped", "failed"]) {
    const pct = ov.total ? ` (${(100 * ov.verdicts[v] / ov.total).toFixed(1)}%)` : "";
    totals.appendChild(el("div", { cls: `card ${v}` }, el("b", { text: String(ov.verdicts[v]) }), v + pct));
  }
  const max = Math.max(1, ...Object.values(ov.by_rule));
  for (const [rule, n] of Object.entries(ov.by_rule)) {
    const bar = el("div", { cls: "bar", title: `show samples dropped by ${rule}`, onclick: () => filterRule(rule) },
      el("span", { text: rule }), el("div", { cls: "fill", style: { width: `${(100 * n / max).toFixed(1)}%` } }),
      el("span", { cls: "muted", text: String(n) }));
    $("rules").appendChild(bar);
  }
  if (!Object.keys(ov.by_rule).length) $("rules").appendChild(el("p", { cls: "muted", text: "nothing was dropped" }));
  const src = $("sources");
  src.appendChild(el("tr", {}, el("th", { text: "source" }), el("th", { text: "samples" }), el("th", { text: "kept" }),
    el("th", { text: "keep rate" })));
  for (const [s, c] of Object.entries(ov.by_source)) {
    src.appendChild(el("tr", {}, el("td", { text: s }), el("td", { text: String(c.total) }), el("td", { text: String(c.kept) }),
      el("td", {}, el("div", { cls: "rate", style: { width: `${(100 * c.keep_rate).toFixed(1)}%` }, title: `${(100 * c.keep_rate).toFixed(1)}%` }),
        el("span", { cls: "muted", text: `${(100 * c.keep_rate).toFixed(1)}%` }))));
  }
  histogram($("hist-thinking"), ov.thinking_hist);
  histogram($("hist-description"), ov.description_hist);
  for (const r of ov.top_reasons) {
    $("top-reasons").appendChild(el("li", {}, el("span", { cls: "badge rule", text: r.rule }), `${r.reason} `,
      el("span", { cls: "muted", text: `× ${r.count} · e.g. ` }), el("a", { text: r.example, onclick: () => openUid(r.example) })));
  }
  for (const [i, rule] of ov.rules.entries()) $("f-rule").appendChild(el("option", { value: String(i), text: rule }));
  for (const [i, s] of ov.sources.entries()) $("f-source").appendChild(el("option", { value: String(i), text: s }));
}

function histogram(box, h) {
  const max = Math.max(1, ...h.counts);
  h.counts.forEach((c, i) => box.appendChild(el("div", {
    style: { height: `${(100 * c / max).toFixed(1)}%` }, title: `${h.edges[i]}–${h.edges[i + 1]}: ${c}` })));
  const total = h.counts.reduce((a, b) => a + b, 0);
  box.after(el("div", { cls: "muted axis", text: h.edges.length
    ? `0 – ${h.edges[h.edges.length - 1]} characters · ${total} samples · tallest bar ${max}` : "no data" }));
}

function filterRule(rule) {
  $("f-rule").value = String(state.ov.rules.indexOf(rule));
  $("f-verdict").value = "";
  applyFilters();
  $("browser").scrollIntoView();
}

function openUid(uid) {
  $("f-search").value = uid; $("f-rule").value = ""; $("f-verdict").value = ""; $("f-source").value = "";
  applyFilters();
  const hit = state.rows.findIndex((r) => r[0] === uid);
  if (hit >= 0) showDetail(hit);
  $("browser").scrollIntoView();
}

function applyFilters(keepPage = false) {
  const v = $("f-verdict").value, rule = $("f-rule").value, src = $("f-source").value;
  const q = $("f-search").value.trim().toLowerCase();
  const ruleId = rule === "" ? null : Number(rule), srcId = src === "" ? null : Number(src);
  const out = [];
  state.rows.forEach((r, i) => {
    if (v && r[2] !== v) return;
    if (ruleId !== null && !r[3].includes(ruleId)) return;
    if (srcId !== null && r[1] !== srcId) return;
    if (q && !(r[0].toLowerCase().includes(q) || r[4].toLowerCase().includes(q) || r[5].toLowerCase().includes(q)
      || r[6].toLowerCase().includes(q))) return;
    out.push(i);
  });
  state.results = out;
  if (!keepPage) state.page = 0;
  const loading = state.ov && state.loaded < state.ov.index_chunks ? ` (loading ${state.loaded}/${state.ov.index_chunks})` : "";
  $("count").textContent = `${out.length} of ${state.rows.length} samples${loading}`;
  renderList();
}

function renderList() {
  const list = $("list");
  list.replaceChildren();
  const start = state.page * PAGE;
  for (const i of state.results.slice(start, start + PAGE)) {
    const r = state.rows[i];
    const thumb = r[8] && r[8][0] ? el("img", { src: r[8][0], alt: "" }) : el("img", { alt: "" });
    const badges = el("div", {}, el("span", { cls: `badge ${r[2]}`, text: VERDICT[r[2]] }),
      ...r[3].map((k) => el("span", { cls: "badge rule", text: state.ov.rules[k] })));
    const li = el("li", { "data-index": String(i), onclick: () => showDetail(i) }, thumb,
      el("div", {}, el("div", { cls: "q", text: r[4] }), badges, el("div", { cls: "muted", text: `${r[0]} · gt ${r[5]} · answer ${r[6] || "—"}` })));
    if (state.selected === i) li.classList.add("sel");
    list.appendChild(li);
  }
  const pages = Math.max(1, Math.ceil(state.results.length / PAGE));
  $("page").textContent = `page ${state.page + 1} / ${pages}`;
}

function showDetail(i) {
  const k = Math.floor(i / state.ov.detail_chunk);
  const chunk = state.details[k];
  if (!chunk) { state.pending = i; loadScript(`data/detail-${pad(k)}.js`); return; }
  state.selected = i;
  for (const li of $("list").children) li.classList.toggle("sel", li.dataset.index === String(i));
  const s = chunk[i % state.ov.detail_chunk];
  const d = $("detail");
  d.replaceChildren();
  d.appendChild(el("div", {}, el("span", { cls: `badge ${s.verdict[0]}`, text: s.verdict }), el("b", { text: ` ${s.uid}` }),
    el("span", { cls: "muted", text: ` · ${s.answer_type}` })));
  if (s.reasons.length) d.appendChild(el("ul", { cls: "reasons" }, ...s.reasons.map((r) => el("li", {}, el("b", { text: r.rule + ": " }), r.reason))));
  const imgs = el("div", { cls: "images" });
  (s.images || []).forEach((src, j) => {
    const thumb = (s.thumbs || [])[j];
    const img = el("img", { src: src || thumb || "", alt: `image ${j + 1}`, class: "sample-image" });
    img.addEventListener("error", () => { if (thumb && img.getAttribute("src") !== thumb) img.setAttribute("src", thumb); }, { once: true });
    imgs.appendChild(img);
  });
  d.appendChild(imgs);
  const section = (title, text, cls) => { d.appendChild(el("h3", { text: title })); d.appendChild(el("pre", { cls: cls || "", text: text == null || text === "" ? "—" : String(text) })); };
  section("Question", s.question, "question");
  if (s.choices) section("Choices", s.choices.map((c, j) => `${String.fromCharCode(65 + j)}. ${c}`).join("\n"));
  section("Ground truth", s.answer, "answer");
  section("Pseudo-CoT (VLM, saw the answer)", s.pseudo_cot, "pseudo-cot");
  section("Description (VLM)", s.description, "description");
  section("Thinking (reasoner, saw only the description)", s.thinking, "reasoning");
  section("Reasoner output", s.reasoner_text, "reasoner-text");
  section("Final answer", s.final_answer, "final-answer");
  if (s.edits.length) section("Coherence edits", s.edits.map((e) => `${e.count} × /${e.pattern}/`).join("\n"));
  d.appendChild(el("h3", { text: "Provenance" }));
  const t = el("table", {}, el("tr", {}, ...["step", "model", "prompt", "tokens in → out", "latency", "attempts"].map((h) => el("th", { text: h }))));
  for (const [step, p] of Object.entries(s.provenance)) {
    t.appendChild(el("tr", {}, el("td", { text: step }), el("td", { text: String(p.model) }), el("td", { text: String(p.prompt_hash) }),
      el("td", { text: `${p.prompt_tokens} → ${p.completion_tokens}` }), el("td", { text: `${Number(p.latency_s || 0).toFixed(2)} s` }),
      el("td", { text: String(p.attempts) })));
  }
  d.appendChild(t);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["f-verdict", "f-rule", "f-source"]) $(id).addEventListener("change", () => applyFilters());
  let timer = null;
  $("f-search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => applyFilters(), 150); });
  $("prev").addEventListener("click", () => { if (state.page > 0) { state.page--; renderList(); } });
  $("next").addEventListener("click", () => { if ((state.page + 1) * PAGE < state.results.length) { state.page++; renderList(); } });
});
