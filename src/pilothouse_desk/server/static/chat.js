// The customer chat page: one conversation, kept in this browser's localStorage.
"use strict";

const KEY = "pilothouse.conversation";
const $ = (id) => document.getElementById(id);
let session = null; // {id, token}
let stopEvents = null;

const STATUS_TEXT = {
  escalated: "A member of our support team will join this conversation shortly.",
  claimed: "A member of our support team is with you.",
  paused: "Your request is waiting for approval by our team.",
  closed: "This conversation is closed. Start a new one any time.",
  resolved: "Glad we could help. Write again any time.",
  open: "",
};

function saveSession(value) {
  session = value;
  if (value) localStorage.setItem(KEY, JSON.stringify(value));
  else localStorage.removeItem(KEY);
}

function loadSession() {
  try {
    const value = JSON.parse(localStorage.getItem(KEY) || "null");
    if (value && typeof value.id === "string" && typeof value.token === "string") return value;
  } catch (_) {
    /* start afresh */
  }
  return null;
}

function show(view) {
  const conversation = view.conversation;
  let status = STATUS_TEXT[conversation.status] ?? "";
  if (conversation.status === "claimed" && conversation.claimed_by) {
    status = conversation.claimed_by + " from our support team is with you.";
  }
  $("status").textContent = status;
  $("status").dataset.status = conversation.status;
  renderTranscript($("messages"), view.transcript);
  $("resolve").hidden = !(
    conversation.status === "open" && view.transcript.some((e) => e.author === "agent")
  );
  const closed = conversation.status === "closed";
  $("text").disabled = closed;
  $("send").disabled = closed;
}

async function refresh() {
  if (!session) return;
  try {
    show(await api("/api/conversations/" + session.id, { token: session.token }));
  } catch (err) {
    if (err.status === 404 || err.status === 403) {
      saveSession(null); // the conversation is gone or not ours: start a new one
      $("messages").replaceChildren();
      $("status").textContent = "";
    } else {
      $("error").textContent = err.message;
    }
  }
}

function follow() {
  if (stopEvents) stopEvents();
  stopEvents = followEvents(
    "/api/conversations/" + session.id + "/events",
    session.token,
    (name) => {
      if (name === "changed" || name === "hello") refresh();
    },
  );
}

async function ensureConversation() {
  if (session) return session;
  const email = $("email").value.trim();
  const created = await api("/api/conversations", {
    method: "POST",
    body: email ? { customer_email: email } : {},
  });
  saveSession({ id: created.conversation.id, token: created.token });
  follow();
  return session;
}

const STEP_TEXT = {
  model_request: "Assistant is thinking…",
  tool_call: "Assistant is checking",
  approval_requested: "Waiting for approval…",
};

async function send(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("error").textContent = "";
  $("send").disabled = true;
  try {
    const { id, token } = await ensureConversation();
    $("text").value = "";
    const list = $("messages");
    list.append(
      el("li", { class: "msg author-customer pending" }, el("span", { class: "body", text })),
    );
    $("working").textContent = "Assistant is thinking…";
    await postEvents("/api/conversations/" + id + "/messages", { text }, token, (name, data) => {
      if (name === "step") {
        const label = STEP_TEXT[data.type];
        if (label) $("working").textContent = data.tool ? label + " (" + data.tool + ")…" : label;
      } else if (name === "conversation") {
        show(data);
      } else if (name === "error") {
        $("error").textContent = data.message;
      }
    });
  } catch (err) {
    $("error").textContent = err.message;
  } finally {
    $("working").textContent = "";
    $("send").disabled = false;
    refresh();
  }
}

$("composer").addEventListener("submit", send);
$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
$("resolve").addEventListener("click", async () => {
  try {
    show(await api("/api/conversations/" + session.id + "/resolve", { method: "POST", body: {}, token: session.token }));
  } catch (err) {
    $("error").textContent = err.message;
  }
});
$("new-conversation").addEventListener("click", () => {
  if (stopEvents) stopEvents();
  saveSession(null);
  location.reload();
});

session = loadSession();
if (session) {
  refresh();
  follow();
}
