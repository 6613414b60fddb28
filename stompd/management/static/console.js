// stompd's management console: reads /api/ every two seconds and offers
// the API's actions. Plain JavaScript, nothing fetched from elsewhere.
"use strict";

const REFRESH_MS = 2000;
const HISTORY = 60;
let credentials = null;
let timer = null;
let last = null;
const rates = [];

function $(id) {
  return document.getElementById(id);
}

function status(text, error = false) {
  const element = $("status");
  element.textContent = text;
  element.className = error ? "error" : "";
}

async function api(method, path) {
  const response = await fetch(`/api${path}`, {
    method,
    headers: { Authorization: `Basic ${credentials}` },
  });
  const body = await response.json();
  if (!response.ok) {
    throw new Error(`${body.error}: ${body.detail}`);
  }
  return body;
}

function cell(row, text, number = false) {
  const td = row.insertCell();
  td.textContent = text;
  if (number) td.className = "number";
  return td;
}

function button(container, label, action) {
  const b = document.createElement("button");
  b.textContent = label;
  b.addEventListener("click", action);
  container.appendChild(b);
  return b;
}

async function act(question, method, path) {
  if (!confirm(question)) return;
  try {
    const result = await api(method, path);
    status(`done: ${JSON.stringify(result)}`);
  } catch (error) {
    status(error.message, true);
  }
  await refresh();
}

function showDestinations(destinations) {
  const body = $("destinations").tBodies[0];
  body.replaceChildren();
  for (const d of destinations) {
    const row = body.insertRow();
    if (d.kind === "topic") {
      // Topics keep nothing: what passes through, and who listens.
      row.dataset.topic = d.topic;
      cell(row, d.vhost);
      cell(row, d.topic);
      cell(row, "");
      cell(row, "");
      cell(row, d.consumers, true);
      cell(row, d.published_per_second, true);
      cell(row, d.delivered_per_second, true);
      row.insertCell();
      continue;
    }
    row.dataset.queue = d.queue;
    cell(row, d.vhost);
    cell(row, d.queue);
    cell(row, d.ready, true).className = "number ready";
    cell(row, d.unacked, true);
    cell(row, d.consumers, true);
    cell(row, d.published_per_second, true);
    cell(row, d.delivered_per_second, true);
    const actions = row.insertCell();
    const queuePath = d.path.slice("/api".length);
    button(actions, "Purge", () => act(`Purge ${d.queue}? Waiting messages are removed.`, "POST", `${queuePath}/purge`)).className = "purge";
    if (d.queue.endsWith(".DLQ")) {
      button(actions, "Move back", () =>
        act(`Send the dead letters of ${d.queue} back to their queues?`, "POST", `${queuePath}/move-dead-letters`),
      ).className = "move";
    }
  }
}

function showConnections(connections) {
  const body = $("connection-list").tBodies[0];
  body.replaceChildren();
  for (const c of connections) {
    const row = body.insertRow();
    row.dataset.session = c.session;
    cell(row, c.session);
    cell(row, c.user ?? "");
    cell(row, c.peer);
    cell(row, c.transport);
    cell(row, c.version ?? "");
    cell(row, c.subscriptions, true);
    cell(row, c.connected_seconds === null ? "" : `${Math.round(c.connected_seconds)} s`, true);
    button(row.insertCell(), "Close", () =>
      act(`Close ${c.session}? The client gets an ERROR.`, "DELETE", `/connections/${encodeURIComponent(c.session)}`),
    );
  }
}

function drawRates() {
  const canvas = $("rates");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const top = Math.max(1, ...rates.map((r) => Math.max(r.published, r.delivered)));
  for (const [key, colour] of [["published", "#2a6fdb"], ["delivered", "#2aa35a"]]) {
    context.strokeStyle = colour;
    context.lineWidth = 2;
    context.beginPath();
    rates.forEach((r, i) => {
      const x = (i / (HISTORY - 1)) * canvas.width;
      const y = canvas.height - 4 - (r[key] / top) * (canvas.height - 8);
      if (i === 0) context.moveTo(x, y);
      else context.lineTo(x, y);
    });
    context.stroke();
  }
  context.fillStyle = "#666";
  context.fillText(`${Math.round(top)}/s`, 4, 12);
}

async function refresh() {
  try {
    const [overview, destinations, connections] = await Promise.all([
      api("GET", "/overview"),
      api("GET", "/destinations"),
      api("GET", "/connections"),
    ]);
    $("node").textContent = `node ${overview.node_id}, stompd ${overview.version}`;
    $("connections").textContent = overview.connections;
    $("queues").textContent = overview.queues;
    const published = overview.messages.published ?? 0;
    const delivered = (overview.messages.delivered ?? 0) + (overview.messages.redelivered ?? 0);
    $("published").textContent = published;
    $("delivered").textContent = delivered;
    $("uptime").textContent = Math.round(overview.uptime_seconds);
    const now = Date.now();
    if (last !== null) {
      const seconds = Math.max(0.001, (now - last.at) / 1000);
      rates.push({ published: (published - last.published) / seconds, delivered: (delivered - last.delivered) / seconds });
      if (rates.length > HISTORY) rates.shift();
      drawRates();
    }
    last = { at: now, published, delivered };
    showDestinations(destinations);
    showConnections(connections);
    if ($("status").className !== "error") status(`updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    status(error.message, true);
  }
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  credentials = btoa(unescape(encodeURIComponent(`${$("user").value}:${$("password").value}`)));
  try {
    await api("GET", "/overview");
  } catch (error) {
    credentials = null;
    status(error.message, true);
    return;
  }
  $("login").hidden = true;
  $("console").hidden = false;
  status("logged in");
  await refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
});
