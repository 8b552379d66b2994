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

// The API's offsets count characters (Unicode code points, as Python does); JavaScript strings
// count UTF-16 units, two for each character outside the Basic Multilingual Plane (most emoji).
// So texts are cut as arrays of characters, never with String.prototype.slice.
const characters = (text) => Array.from(text);

// text with [start, end) wrapped in <mark>; given the passage's sentences (document offsets, the
// passage starting at document offset `at`), the text outside them, which the reader left out
// (navigation, pop-ups), is dimmed
function highlighted(text, start, end, tag = "p", cls = "passage", sentences = null, at = 0) {
  const box = el(tag, { class: cls });
  const chars = characters(text);
  const spans = (sentences || []).map(([s, e]) => [s - at, e - at]);
  const cuts = [...new Set([0, chars.length, start, end, ...spans.flat()])]
    .filter((i) => i >= 0 && i <= chars.length).sort((a, b) => a - b);
  for (let k = 0; k + 1 < cuts.length; k++) {
    const [a, b] = [cuts[k], cuts[k + 1]];
    let node = document.createTextNode(chars.slice(a, b).join(""));
    if (start <= a && b <= end && start < end) node = el("mark", {}, node);
    if (sentences && sentences.length && !spans.some(([s, e]) => s <= a && b <= e)) {
      node = el("span", { class: "debris" }, node);
    }
    box.append(node);
  }
  return box;
}

// ", p. 3" for formats with pages (PDF), nothing for the others
function pageLabel(page) {
  return Number.isInteger(page) ? `, p. ${page}` : "";
}

function docLink(docId, start, end, label) {
  const params = new URLSearchParams({ doc: docId, start: String(start), end: String(end) });
  return el("a", { href: "#" + params.toString(), class: "open-doc" }, label);
}

// every request goes through here: it adds the API key when one was given, and on 401
// shows the key form, then retries once the key is entered
const KEY = "citeqa-api-key";
const keyForm = $("key-form");
let keyWaiters = [];

async function api(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers || {});
    const key = sessionStorage.getItem(KEY);
    if (key) headers.set("Authorization", "Bearer " + key);
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401) return response;
    sessionStorage.removeItem(KEY);
    setStatus(key ? "That API key was refused; try again." : "This server needs an API key.", true);
    keyForm.hidden = false;
    $("api-key").focus();
    await new Promise((resolve) => keyWaiters.push(resolve));
  }
}

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("api-key").value.trim());
  $("api-key").value = "";
  keyForm.hidden = true;
  setStatus("");
  const waiting = keyWaiters;
  keyWaiters = [];
  waiting.forEach((resolve) => resolve());
});

// a request whose failure is reported in the status line: the parsed body, or null on failure
async function call(path, options = {}) {
  let response;
  try { response = await api(path, options); } catch (err) {
    setStatus("Cannot reach the citeqa server. Is it running?", true);
    return null;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    setStatus(`Error ${response.status}: ${body.detail || response.statusText}`, true);
    return null;
  }
  return body;
}

function setStatus(message, isError = false) {
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function passageItem(p) {
  return el("li", {},
    el("strong", {}, p.title || p.doc_id), " ",
    el("span", { class: "cite" }, `${p.doc_id}:${p.start}-${p.end}${pageLabel(p.page)}`), " ",
    docLink(p.doc_id, p.start, p.end, "open document"),
    highlighted(p.text, 0, 0, "p", "passage", p.sentences, p.start));
}

// an answer: its text, score, source, and its passage with the answer highlighted
function answerBlock(a, passages, attrs) {
  const p = passages.get(a.passage_id);
  const sources = (a.documents || 1) > 1 ? ` · stated by ${a.documents} documents` : "";
  const block = el("div", { class: "answer-block" },
    el("p", { class: "answer-text", ...attrs }, a.text),
    el("p", { class: "meta" },
      `score ${(a.score * 100).toFixed(0)}%${sources} · `, el("strong", {}, p ? p.title : a.doc_id), " · ",
      el("span", { class: "cite" }, `${a.doc_id}:${a.start}-${a.end}${pageLabel(a.page)}`), " · ",
      docLink(a.doc_id, a.start, a.end, "open document")));
  if (p) block.append(highlighted(p.text, a.start - p.start, a.end - p.start, "p", "passage", p.sentences, p.start));
  return block;
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
    // when documents disagree, every side is shown in its own passage, under a notice
    const conflict = body.agreement === "conflict";
    const main = conflict ? body.answers.filter((a) => a.conflict) : [body.answers[0]];
    if (conflict) {
      answerBox.append(el("p", { class: "conflict-notice", id: "conflict", role: "alert" },
        el("strong", {}, "Sources disagree."),
        ` The documents give ${main.length} incompatible answers; each is shown in its passage.`));
    }
    main.forEach((a, i) => answerBox.append(answerBlock(a, passages, i === 0 ? { id: "answer-text" } : {})));
    // the other places that state an answer shown above, then the other answers, each highlighted
    const shown = new Set(main.map((a) => a.passage_id));
    const rest = body.answers.filter((a) => !main.includes(a));
    for (const c of [...main.flatMap((a) => a.citations || []), ...rest]) {
      const q = passages.get(c.passage_id);
      if (!q || shown.has(c.passage_id)) continue;
      shown.add(c.passage_id);
      const item = passageItem(q);
      item.replaceChild(highlighted(q.text, c.start - q.start, c.end - q.start, "p", "passage", q.sentences, q.start), item.lastChild);
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
    const body = await call("/ask", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ question }),
    });
    if (!body) return;
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
  const doc = await call(docPath(docId));
  if (!doc) return;
  setStatus("");
  result.hidden = true;
  $("doc-title").textContent = doc.title || doc.doc_id;
  const length = characters(doc.text).length;
  $("doc-meta").textContent = `${doc.doc_id} · characters ${start}–${end} of ${length}`;
  const valid = Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= length;
  const pre = $("doc-text");
  pre.replaceChildren(...(valid ? highlighted(doc.text, start, end, "span", "").childNodes : [document.createTextNode(doc.text)]));
  docView.hidden = false;
  const mark = pre.querySelector("mark");
  if (mark) mark.scrollIntoView({ block: "center" });
}

function docPath(docId) {
  return "/documents/" + docId.split("/").map(encodeURIComponent).join("/");
}

// the documents panel: list, add (file or pasted text), remove
async function loadDocuments() {
  let response;
  try { response = await api("/documents"); } catch (err) { return; }
  if (!response.ok) return;
  const docs = await response.json();
  $("doc-list").replaceChildren(...docs.map((d) => {
    const remove = el("button", { type: "button", class: "remove", "data-doc": d.doc_id }, "Remove");
    remove.addEventListener("click", () => removeDocument(d.doc_id));
    return el("li", {}, el("strong", {}, d.title || d.doc_id), " ",
      el("span", { class: "cite" }, `${d.doc_id} · ${d.origin}`), " ", remove);
  }));
}

async function changeDocuments(path, options, verb) {
  setStatus(`${verb}…`);
  const body = await call(path, options);
  if (!body) return false;
  await loadDocuments();
  setStatus(`${body.status === "removed" ? "Removed" : "Added"} ${body.doc_id}` +
    (body.passages && body.status !== "removed" ? ` (${body.passages} passages)` : "") + ".");
  return true;
}

function removeDocument(docId) {
  if (!confirm(`Remove ${docId} from the collection?`)) return;
  changeDocuments(docPath(docId), { method: "DELETE" }, `Removing ${docId}`);
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) { setStatus("Choose a file first.", true); return; }
  const data = new FormData();
  data.append("file", file);
  if (await changeDocuments("/documents", { method: "POST", body: data }, `Adding ${file.name}`)) {
    event.target.reset();
  }
});

$("paste-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("paste-text").value;
  if (!text.trim()) { setStatus("Paste some text first.", true); return; }
  const body = { text };
  const title = $("paste-title").value.trim();
  if (title) body.title = title;
  const options = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  if (await changeDocuments("/documents", options, "Adding the text")) event.target.reset();
});

$("docs-panel").addEventListener("toggle", (event) => { if (event.target.open) loadDocuments(); });

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
