// citeqa web page. Document text is only ever inserted as text nodes, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("ask-form"), input = $("question"), button = $("ask-button"), status = $("status");
const result = $("result"), answerBox = $("answer"), others = $("others"), othersHeading = $("others-heading");
const docView = $("doc-view");

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

// text with [start, end) wrapped in <mark>, as three text nodes
function highlighted(text, start, end, tag = "p", cls = "passage") {
  const box = el(tag, { class: cls });
  box.append(document.createTextNode(text.slice(0, start)));
  box.append(el("mark", {}, text.slice(start, end)));
  box.append(document.createTextNode(text.slice(end)));
  return box;
}

function docLink(docId, start, end, label) {
  const params = new URLSearchParams({ doc: docId, start: String(start), end: String(end) });
  return el("a", { href: "#" + params.toString(), class: "open-doc" }, label);
}

function setStatus(message, isError = false) {
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function passageItem(p) {
  return el("li", {},
    el("strong", {}, p.title || p.doc_id), " ",
    el("span", { class: "cite" }, `${p.doc_id}:${p.start}-${p.end}`), " ",
    docLink(p.doc_id, p.start, p.end, "open document"),
    el("p", { class: "passage" }, p.text));
}

let lastBody = null;

function render(body) {
  lastBody = body;
  answerBox.replaceChildren();
  others.replaceChildren();
  const passages = new Map(body.passages.map((p) => [p.passage_id, p]));
  if (body.answers.length === 0) {
    answerBox.append(el("p", { class: "not-found", id: "not-found" }, "Not found in the documents."),
      el("p", { class: "meta" }, "The documents do not answer this question. The closest passages are below."));
    body.passages.forEach((p) => others.append(passageItem(p)));
    othersHeading.textContent = "Closest passages";
  } else {
    const best = body.answers[0];
    const p = passages.get(best.passage_id);
    answerBox.append(el("p", { class: "answer-text", id: "answer-text" }, best.text));
    answerBox.append(el("p", { class: "meta" },
      `score ${(best.score * 100).toFixed(0)}% · `, el("strong", {}, p ? p.title : best.doc_id), " · ",
      el("span", { class: "cite" }, `${best.doc_id}:${best.start}-${best.end}`), " · ",
      docLink(best.doc_id, best.start, best.end, "open document")));
    if (p) answerBox.append(highlighted(p.text, best.start - p.start, best.end - p.start));
    const shown = new Set([best.passage_id]);
    for (const a of body.answers.slice(1)) {
      const q = passages.get(a.passage_id);
      if (!q || shown.has(a.passage_id)) continue;
      shown.add(a.passage_id);
      const item = passageItem(q);
      item.replaceChild(highlighted(q.text, a.start - q.start, a.end - q.start), item.lastChild);
      others.append(item);
    }
    for (const q of body.passages) if (!shown.has(q.passage_id)) others.append(passageItem(q));
    othersHeading.textContent = "Other cited passages";
  }
  othersHeading.hidden = others.children.length === 0;
  result.hidden = false;
}

async function ask(question) {
  button.disabled = true;
  setStatus("Searching the documents…");
  try {
    let response;
    try {
      response = await fetch("/ask", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ question, top_k: 5 }),
      });
    } catch (err) {
      setStatus("Cannot reach the citeqa server. Is it running?", true);
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      setStatus(`Error ${response.status}: ${body.detail || response.statusText}`, true);
      return;
    }
    setStatus(body.answers.length ? "" : "No answer found.");
    showAnswerView();
    render(body);
  } finally {
    button.disabled = false;
  }
}

function showAnswerView() {
  docView.hidden = true;
  result.hidden = lastBody === null;
}

async function showDocument(docId, start, end) {
  setStatus("Opening the document…");
  let response;
  try {
    response = await fetch("/documents/" + docId.split("/").map(encodeURIComponent).join("/"));
  } catch (err) {
    setStatus("Cannot reach the citeqa server. Is it running?", true);
    return;
  }
  const doc = await response.json().catch(() => ({}));
  if (!response.ok) {
    setStatus(`Error ${response.status}: ${doc.detail || response.statusText}`, true);
    return;
  }
  setStatus("");
  result.hidden = true;
  $("doc-title").textContent = doc.title || doc.doc_id;
  $("doc-meta").textContent = `${doc.doc_id} · characters ${start}–${end} of ${doc.text.length}`;
  const valid = Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= doc.text.length;
  const pre = $("doc-text");
  pre.replaceChildren(...(valid ? highlighted(doc.text, start, end, "span", "").childNodes : [document.createTextNode(doc.text)]));
  docView.hidden = false;
  const mark = pre.querySelector("mark");
  if (mark) mark.scrollIntoView({ block: "center" });
}

function route() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.has("doc")) showDocument(params.get("doc"), Number(params.get("start")), Number(params.get("end")));
  else showAnswerView();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const question = input.value.trim();
  if (!question) { setStatus("Type a question first.", true); return; }
  if (location.hash) history.pushState(null, "", location.pathname);
  ask(question);
});
$("back").addEventListener("click", (event) => { event.preventDefault(); history.back(); });
$("home").addEventListener("click", (event) => { event.preventDefault(); history.pushState(null, "", location.pathname); showAnswerView(); input.focus(); });
window.addEventListener("hashchange", route);
route();
