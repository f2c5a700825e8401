// The agent console: queue, one conversation with its agent steps and policy decisions,
// approvals, claim / reply / close. The token lives in sessionStorage for this tab only.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("pilothouse.console.token");
let human = sessionStorage.getItem("pilothouse.console.human") || "";
let current = null; // selected conversation id
let stopEvents = null;
let refreshTimer = null;

function fail(err) {
  if (err && (err.status === 401 || err.status === 403)) {
    signOut("The console token was refused.");
    return;
  }
  $("error").textContent = err ? err.message : "";
}

function signOut(message) {
  sessionStorage.removeItem("pilothouse.console.token");
  token = null;
  if (stopEvents) stopEvents();
  $("app").hidden = true;
  $("gate").hidden = false;
  $("gate-error").textContent = message || "";
}

function badge(status) {
  return el("span", { class: "badge " + status, text: status });
}

function conversationItem(c) {
  return el(
    "li",
    {
      class: "queue-item" + (c.id === current ? " selected" : ""),
      "data-id": c.id,
      onclick: () => select(c.id),
    },
    el("div", {}, badge(c.status), " ", el("code", { text: c.id })),
    el("div", { class: "summary", text: c.summary || "" }),
    c.claimed_by ? el("div", { class: "muted", text: "claimed by " + c.claimed_by }) : null,
  );
}

async function loadQueue() {
  const [{ queue }, { approvals }, { conversations }] = await Promise.all([
    api("/api/console/queue", { token }),
    api("/api/console/approvals", { token }),
    api("/api/console/conversations?limit=20", { token }),
  ]);
  $("recent").replaceChildren(...conversations.map(conversationItem));
  $("queue-count").textContent = String(queue.length);
  $("queue-empty").hidden = queue.length > 0;
  $("queue").replaceChildren(...queue.map(conversationItem));
  $("approval-count").textContent = String(approvals.length);
  $("approvals").replaceChildren(
    ...approvals.map((p) => approvalItem(p, true)),
  );
}

function conversationOf(p) {
  return p.conversation_id || p.conv_id || p.conversation;
}

function approvalItem(p, withLink) {
  const cid = conversationOf(p);
  const args = JSON.stringify(p.arguments || {});
  return el(
    "li",
    { class: "approval", "data-key": p.key },
    el("div", {}, el("strong", { text: p.tool || p.kind || "call" }), el("code", { text: " " + args })),
    p.reason ? el("div", { class: "muted", text: p.reason }) : null,
    withLink && cid
      ? el("a", { href: "#", text: "conversation " + cid, onclick: (e) => { e.preventDefault(); select(cid); } })
      : null,
    el(
      "div",
      { class: "buttons" },
      el("button", { class: "good approve", type: "button", text: "Approve", onclick: () => decide(cid, p.key, true) }),
      el("button", { class: "danger deny", type: "button", text: "Deny", onclick: () => decide(cid, p.key, false) }),
    ),
  );
}

function stepRow(e) {
  let cls = e.type;
  const decision = e.decision;
  if (decision && decision.effect && decision.effect !== "allow") cls += " blocked";
  return el(
    "li",
    { class: cls },
    el("span", { class: "muted", text: "s" + e.step + " " }),
    decision ? badge(decision.effect) : null,
    decision ? " " : null,
    e.line,
    decision && decision.effect !== "allow" && decision.reason
      ? el("div", { class: "muted", text: "rule " + (decision.rule || "default") + ": " + decision.reason })
      : null,
  );
}

async function loadConversation() {
  if (!current) return;
  const view = await api("/api/console/conversations/" + encodeURIComponent(current), { token });
  const c = view.conversation;
  $("placeholder").hidden = true;
  $("detail").hidden = false;
  $("conv-id").textContent = c.id;
  $("conv-status").replaceWith(Object.assign(badge(c.status), { id: "conv-status" }));
  $("conv-claimed").textContent = c.claimed_by ? "claimed by " + c.claimed_by : "";
  $("conv-summary").textContent = [c.summary, c.customer_email, c.customer_id && "verified " + c.customer_id]
    .filter(Boolean)
    .join(" · ");
  // Taking over means claiming an escalated conversation from the agent; one claimed by
  // another human stays theirs.
  $("claim").disabled = c.status !== "escalated";
  $("close").disabled = c.status === "closed";
  $("reply-text").disabled = c.status === "closed";
  $("reply-send").disabled = c.status === "closed";
  renderTranscript($("messages"), view.transcript, { perspective: "console" });
  $("conv-approvals").replaceChildren(...view.approvals.map((p) => approvalItem(p, false)));
  const steps = $("steps");
  steps.replaceChildren();
  if (view.runs_total > view.runs.length) {
    steps.append(
      el("div", { class: "run-head", text: "the last " + view.runs.length + " of " + view.runs_total + " runs" }),
    );
  }
  for (const run of view.runs) appendRun(steps, run, 0);
}

// A run and, indented below it, its child runs: who did what in a team (triage, the
// specialist it handed off to, the supervisor's review).
function appendRun(parent, run, depth) {
  const who = run.agent ? run.agent + " · " : "";
  parent.append(
    el("div", { class: "run-head", text: who + "run " + run.run_id + " · " + run.status }),
    el("ol", { class: "steps" }, ...run.events.map(stepRow)),
  );
  const children = run.children || [];
  if (!children.length) return;
  const nested = el("div", { class: "run-children" });
  parent.append(nested);
  for (const child of children) appendRun(nested, child, depth + 1);
}

async function refresh() {
  try {
    await loadQueue();
    await loadConversation();
  } catch (err) {
    fail(err);
  }
}

function scheduleRefresh() {
  // Many notifications arrive together while the agent works: refresh once per burst.
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refresh();
  }, 150);
}

async function select(id) {
  current = id;
  $("error").textContent = "";
  await refresh();
}

async function act(path, body) {
  $("error").textContent = "";
  try {
    await api("/api/console/conversations/" + encodeURIComponent(current) + path, {
      method: "POST",
      body,
      token,
    });
  } catch (err) {
    fail(err);
  }
  await refresh();
}

async function decide(cid, key, approve) {
  $("error").textContent = "";
  try {
    await api("/api/console/conversations/" + encodeURIComponent(cid) + "/decide", {
      method: "POST",
      body: { key, approve, human },
      token,
    });
  } catch (err) {
    fail(err);
  }
  await refresh();
}

function start() {
  $("gate").hidden = true;
  $("app").hidden = false;
  if (stopEvents) stopEvents();
  stopEvents = followEvents("/api/console/events", token, () => scheduleRefresh(), (stateName, status) => {
    if (stateName === "refused") signOut(status === 403 ? "Wrong console token." : "");
  });
  refresh();
}

$("gate").addEventListener("submit", async (event) => {
  event.preventDefault();
  const candidate = $("token").value.trim();
  const name = $("human").value.trim();
  try {
    await api("/api/console/queue", { token: candidate });
  } catch (err) {
    $("gate-error").textContent = err.status === 403 ? "Wrong console token." : err.message;
    return;
  }
  token = candidate;
  human = name;
  sessionStorage.setItem("pilothouse.console.token", token);
  sessionStorage.setItem("pilothouse.console.human", human);
  start();
});
$("claim").addEventListener("click", () => act("/claim", { human }));
$("close").addEventListener("click", () => act("/close", { human }));
$("reply-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("reply-text").value.trim();
  if (!text) return;
  $("reply-text").value = "";
  await act("/reply", { human, text });
});
$("open-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = $("open-id").value.trim();
  if (id) select(id);
});
$("logout").addEventListener("click", (event) => {
  event.preventDefault();
  signOut("");
});

if (token) {
  $("human").value = human;
  start();
} else {
  $("gate").hidden = false;
}
