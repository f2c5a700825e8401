// Shared helpers of the three pages: API calls, Server-Sent Events over fetch, DOM building.
// Plain browser JavaScript, no dependencies. User-provided text is only ever set as
// textContent, never as HTML, so a message cannot inject markup.
"use strict";

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, { method = "GET", body = undefined, token = undefined } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const message = data && data.error ? data.error.message : response.statusText;
    throw new ApiError(response.status, message);
  }
  return data;
}

// Read a text/event-stream response body, calling onEvent(name, data) per event.
// fetch (not EventSource) so the token travels in a header, never in the URL.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const lines = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) lines.push(line.slice(5).trimStart());
      }
      if (!lines.length) continue; // a heartbeat comment
      let data = lines.join("\n");
      try {
        data = JSON.parse(data);
      } catch (_) {
        /* keep the text */
      }
      onEvent(name, data);
    }
  }
}

// POST a JSON body and read the answer as an event stream.
async function postEvents(path, body, token, onEvent) {
  const response = await fetch(path, {
    method: "POST",
    headers: {
      Accept: "text/event-stream",
      "Content-Type": "application/json",
      Authorization: "Bearer " + token,
    },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    let message = response.statusText;
    try {
      message = (await response.json()).error.message;
    } catch (_) {
      /* keep the status text */
    }
    throw new ApiError(response.status, message);
  }
  await readEvents(response, onEvent);
}

// Keep a GET event stream open, reconnecting after a pause when it ends or fails.
// Returns a function that stops it.
function followEvents(path, token, onEvent, onState) {
  let stopped = false;
  let controller = null;
  (async () => {
    let pause = 500;
    while (!stopped) {
      controller = new AbortController();
      try {
        const response = await fetch(path, {
          headers: { Accept: "text/event-stream", Authorization: "Bearer " + token },
          signal: controller.signal,
        });
        if (response.status === 401 || response.status === 403 || response.status === 404) {
          if (onState) onState("refused", response.status);
          return;
        }
        if (onState) onState("open");
        pause = 500;
        await readEvents(response, onEvent);
      } catch (_) {
        /* network error or abort: retry below */
      }
      if (stopped) return;
      if (onState) onState("retrying");
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 10000);
    }
  })();
  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function formatTime(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  if (seconds < 60) return seconds.toFixed(1) + " s";
  if (seconds < 3600) return (seconds / 60).toFixed(1) + " min";
  return (seconds / 3600).toFixed(1) + " h";
}

const AUTHOR_LABEL = { customer: "You", agent: "Assistant", human: "Support", system: "" };

function renderTranscript(list, entries, { perspective = "customer" } = {}) {
  list.replaceChildren();
  for (const entry of entries) {
    let who = AUTHOR_LABEL[entry.author] ?? entry.author;
    if (perspective === "console") who = entry.author;
    if (entry.author === "human" && entry.human) who += " · " + entry.human;
    list.append(
      el(
        "li",
        { class: "msg author-" + entry.author, "data-author": entry.author },
        who ? el("span", { class: "who", text: who }) : null,
        el("span", { class: "body", text: entry.text }),
        el("time", { class: "ts", text: formatTime(entry.ts) }),
      ),
    );
  }
  list.scrollTop = list.scrollHeight;
}
