// The built-in page: connect with @stomp/stompjs, subscribe, publish.
"use strict";

const $ = (id) => document.getElementById(id);
let client = null;
let subscriptionCount = 0;

function defaultUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

function setStatus(text, state) {
  const status = $("status");
  status.textContent = text;
  status.className = state;
}

function setConnected(connected) {
  $("connect").disabled = connected;
  $("disconnect").disabled = !connected;
  $("subscribe").disabled = !connected;
  $("send").disabled = !connected;
}

function showMessage(message) {
  const item = document.createElement("li");
  const destination = document.createElement("span");
  destination.className = "destination";
  destination.textContent = message.headers.destination;
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = message.body;
  item.append(destination, body);
  $("messages").append(item);
}

$("connect-form").addEventListener("submit", (event) => {
  event.preventDefault();
  // No second client while this one is still connecting.
  $("connect").disabled = true;
  setStatus("connecting", "off");
  client = new StompJs.Client({
    brokerURL: $("url").value,
    connectHeaders: { login: $("login").value, passcode: $("passcode").value },
    heartbeatIncoming: 10000,
    heartbeatOutgoing: 10000,
    reconnectDelay: 0,
  });
  client.onConnect = (frame) => {
    setStatus(`connected, STOMP ${frame.headers.version}`, "on");
    setConnected(true);
  };
  client.onStompError = (frame) => setStatus(`error: ${frame.headers.message}`, "error");
  client.onWebSocketClose = () => {
    if (!$("status").classList.contains("error")) setStatus("disconnected", "off");
    setConnected(false);
    // The broker dropped them with the connection.
    $("subscriptions").replaceChildren();
  };
  client.activate();
});

$("disconnect").addEventListener("click", () => client && client.deactivate());

$("subscribe-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const destination = $("subscribe-destination").value;
  const id = `sub-${++subscriptionCount}`;
  client.subscribe(destination, showMessage, { id });
  const item = document.createElement("li");
  item.textContent = `${id}: ${destination}`;
  $("subscriptions").append(item);
});

$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  client.publish({ destination: $("send-destination").value, body: $("send-body").value });
});

$("url").value = defaultUrl();
