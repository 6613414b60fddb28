// @stomp/stompjs against a running stompd, with `ws` as the WebSocket, run
// by tests/integration/test_websocket_stompjs.py:
//
//   node tests/js/stompjs_client.mjs SCENARIO URL [ARG ...]
//
// Each scenario prints one JSON object per line on stdout: progress lines
// (`{"ready": true}`) the test may wait for, and last the result. Any
// failure, or the overall timeout, prints `{"error": ...}` and exits 1.

import { Client, Versions } from "@stomp/stompjs";
import WebSocket from "ws";

// Node 20 has no global WebSocket; stompjs creates one from brokerURL.
globalThis.WebSocket = WebSocket;

const [scenario, url, ...args] = process.argv.slice(2);
const TIMEOUT_MS = Number(process.env.STOMPJS_TIMEOUT_MS || 20000);

function emit(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

function fail(error) {
  emit({ error: String(error && error.stack ? error.stack : error) });
  process.exit(1);
}

const watchdog = setTimeout(() => fail(`${scenario}: timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS);

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Resolve when predicate() holds, checking every 10 ms; reject after ms.
async function until(predicate, ms, what) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(10);
  }
}

// A connected client and what it saw: { client, connected, events }.
// Any STOMP ERROR or unexpected close is a failure of the scenario.
function connect(options = {}) {
  const events = { closed: null, errors: [], heartbeats: 0 };
  return new Promise((resolve, reject) => {
    const client = new Client({
      brokerURL: url,
      connectHeaders: { login: "guest", passcode: "guest" },
      reconnectDelay: 0,
      connectionTimeout: 5000,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      onConnect: (frame) => resolve({ client, connected: frame, events }),
      // An ERROR ends the scenario at once, before or after CONNECTED.
      onStompError: (frame) => {
        events.errors.push({ headers: frame.headers, body: frame.body });
        const error = new Error(`ERROR frame: ${JSON.stringify(frame.headers)} ${frame.body}`);
        reject(error);
        fail(error);
      },
      onWebSocketClose: (event) => {
        events.closed = { code: event.code, reason: String(event.reason || "") };
        reject(new Error(`WebSocket closed before CONNECTED: ${event.code}`));
      },
      onHeartbeatReceived: () => {
        events.heartbeats += 1;
      },
      ...options,
    });
    client.activate();
  });
}

function receiptFor(client, id) {
  return new Promise((resolve) => client.watchForReceipt(id, resolve));
}

// Subscribe and wait for the broker's receipt, so that what is published
// next is routed to the subscription.
async function subscribe(client, destination, callback, headers = {}) {
  const id = `sub-${destination}-${Math.random().toString(16).slice(2)}`;
  const subscribed = receiptFor(client, id);
  const subscription = client.subscribe(destination, callback, { ...headers, receipt: id });
  await subscribed;
  return subscription;
}

function describe(message) {
  return {
    headers: message.headers,
    body: message.body,
    bytes: Buffer.from(message.binaryBody).toString("base64"),
  };
}

const unique = (prefix) => `${prefix}${Date.now().toString(36)}${Math.random().toString(16).slice(2, 8)}`;

const scenarios = {
  // CONNECT offering one version: what CONNECTED and the handshake said.
  async version(only) {
    const { client, connected } = await connect({ stompVersions: new Versions([only]) });
    const result = {
      version: connected.headers.version,
      protocol: client.webSocket.protocol,
      server: connected.headers.server,
    };
    // The version in use must carry messages too.
    const topic = unique("/topic/version.");
    const got = [];
    await subscribe(client, topic, (m) => got.push(m.body));
    client.publish({ destination: topic, body: `hello ${only}` });
    await until(() => got.length === 1, 5000, "the message");
    result.body = got[0];
    await client.deactivate();
    return result;
  },

  // Publish on a topic to two subscribers (one on another connection).
  async pubsub() {
    const a = await connect();
    const b = await connect();
    const topic = unique("/topic/pubsub.");
    const gotA = [];
    const gotB = [];
    await subscribe(a.client, topic, (m) => gotA.push(describe(m)));
    await subscribe(b.client, topic, (m) => gotB.push(describe(m)));
    const sent = ["one", "two", "three: ünïcödé"];
    for (const [i, body] of sent.entries()) {
      a.client.publish({ destination: topic, body, headers: { n: String(i), "x-colon": "a:b" } });
    }
    await until(() => gotA.length === 3 && gotB.length === 3, 5000, "three messages each");
    await a.client.deactivate();
    await b.client.deactivate();
    return { a: gotA, b: gotB };
  },

  // client-individual acks: ack all but one, nack that one and get it back
  // redelivered; acknowledged ones never come back.
  async queueAck() {
    const { client } = await connect();
    const queue = unique("/queue/ack.");
    for (let i = 0; i < 4; i++) {
      client.publish({ destination: queue, body: `m${i}` });
    }
    const deliveries = [];
    await subscribe(
      client,
      queue,
      (m) => {
        deliveries.push({ body: m.body, redelivered: m.headers.redelivered ?? null, ack: m.headers.ack ?? null });
        if (m.body === "m2" && !m.headers.redelivered) {
          m.nack();
        } else {
          m.ack();
        }
      },
      { ack: "client-individual" },
    );
    await until(() => deliveries.length >= 5, 5000, "four deliveries and one redelivery");
    // Nothing more should come: everything is acknowledged.
    await sleep(300);
    const settled = receiptFor(client, "settled");
    client.publish({ destination: unique("/queue/other."), body: "x", headers: { receipt: "settled" } });
    await settled;
    await client.deactivate();
    return { deliveries };
  },

  // Receipts for SUBSCRIBE, SEND, UNSUBSCRIBE, in order.
  async receipts() {
    const { client } = await connect();
    const topic = unique("/topic/receipt.");
    const order = [];
    const got = [];
    const watch = (id) => receiptFor(client, id).then((frame) => order.push(frame.headers["receipt-id"]));
    const all = [watch("r-sub"), watch("r-send"), watch("r-unsub")];
    const subscription = client.subscribe(topic, (m) => got.push(m.body), { receipt: "r-sub" });
    client.publish({ destination: topic, body: "with receipt", headers: { receipt: "r-send" } });
    await all[1];
    subscription.unsubscribe({ receipt: "r-unsub" });
    await Promise.all(all);
    await client.deactivate();
    return { order, got };
  },

  // Heart-beats both ways keep an idle connection up; it works afterwards.
  async heartbeats(idleMs) {
    const { client, connected, events } = await connect({ heartbeatIncoming: 1000, heartbeatOutgoing: 1000 });
    const closes = [];
    client.onWebSocketClose = (event) => closes.push(event.code);
    await sleep(Number(idleMs));
    if (closes.length || !client.connected) {
      throw new Error(`the connection did not last the quiet: closed with ${closes}`);
    }
    const topic = unique("/topic/beats.");
    const got = [];
    await subscribe(client, topic, (m) => got.push(m.body));
    client.publish({ destination: topic, body: "after the quiet" });
    await until(() => got.length === 1, 5000, "the message after the quiet");
    const result = {
      heartBeat: connected.headers["heart-beat"],
      heartbeatsReceived: events.heartbeats,
      closes: [...closes],
      connected: client.connected,
      got,
    };
    await client.deactivate();
    return result;
  },

  // Subscribe (prints {"ready": true} once subscribed), then collect
  // COUNT messages.
  async subscribe(destination, count) {
    const { client } = await connect();
    const got = [];
    await subscribe(client, destination, (m) => got.push(describe(m)));
    emit({ ready: true });
    await until(() => got.length >= Number(count), 10000, `${count} messages`);
    await sleep(100);
    await client.deactivate();
    return { messages: got };
  },

  // Publish one message with HEADERS (JSON) and a text BODY, or bytes
  // given as base64 with BINARY=binary; waits for the receipt.
  // As LOGIN, one frame (SEND or SUBSCRIBE) with a receipt: the ERROR
  // the broker answers with, if any.
  async refused(login, passcode, command, destination) {
    const { client } = await connect({ connectHeaders: { login, passcode } });
    const error = new Promise((resolve) => {
      client.onStompError = (frame) => resolve({ headers: frame.headers, body: frame.body });
    });
    if (command === "SEND") {
      client.publish({ destination, body: "x", headers: { receipt: "r" } });
    } else {
      client.subscribe(destination, () => {}, { receipt: "r" });
    }
    const answer = await Promise.race([error, receiptFor(client, "r").then(() => ({ receipt: true }))]);
    client.forceDisconnect();
    return answer;
  },

  async publish(destination, headersJson, body, binary) {
    const { client } = await connect();
    const done = receiptFor(client, "published");
    const headers = { ...JSON.parse(headersJson), receipt: "published" };
    if (binary === "binary") {
      client.publish({ destination, headers, binaryBody: new Uint8Array(Buffer.from(body, "base64")) });
    } else {
      client.publish({ destination, headers, body });
    }
    await done;
    await client.deactivate();
    return { published: true };
  },
};

const run = scenarios[scenario];
if (!run) {
  fail(`unknown scenario ${scenario}; one of ${Object.keys(scenarios).join(", ")}`);
}
try {
  emit(await run(...args));
  clearTimeout(watchdog);
  process.exit(0);
} catch (error) {
  fail(error);
}
