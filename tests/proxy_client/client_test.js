// Drives `sockit proxy`'s HTTP API with toxiproxy-node-client (pinned in
// package-lock.json) and checks each call's effect on real traffic through the
// proxy: an echo server behind it, TCP clients in front. Run by
// tests/e2e_proxy_api.sh as: node client_test.js API_URL ECHO_PORT
"use strict";
const net = require("net");
const assert = require("assert");
const { Toxiproxy } = require("toxiproxy-node-client");

const [api, echoPort] = [process.argv[2], Number(process.argv[3])];
const toxiproxy = new Toxiproxy(api);

// One round trip through host:port: the time in ms, or what went wrong.
function roundTrip(port, message = "ping") {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const sock = net.connect(port, "127.0.0.1");
    let got = "";
    const timer = setTimeout(() => { sock.destroy(); reject(new Error("no answer in 5 s")); }, 5000);
    sock.on("connect", () => sock.write(message));
    sock.on("data", (d) => {
      got += d;
      if (got.length >= message.length) {
        clearTimeout(timer);
        sock.end();
        assert.strictEqual(got, message);
        resolve(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    });
    sock.on("error", (e) => { clearTimeout(timer); reject(e); });
    sock.on("close", () => { clearTimeout(timer); if (got.length < message.length) reject(new Error("closed")); });
  });
}

function portOf(listen) {
  return Number(listen.slice(listen.lastIndexOf(":") + 1));
}

const checks = [];
function check(name, fn) { checks.push([name, fn]); }

let proxy, port;

check("version answers", async () => {
  const v = await toxiproxy.getVersion();
  assert.match(v, /"version"/);
});

check("createProxy makes a proxy that relays", async () => {
  proxy = await toxiproxy.createProxy({ name: "echo", listen: "127.0.0.1:0", upstream: `127.0.0.1:${echoPort}` });
  assert.strictEqual(proxy.name, "echo");
  assert.strictEqual(proxy.enabled, true);
  port = portOf(proxy.listen);
  assert.ok(port > 0, `listen ${proxy.listen} has a real port`);
  await roundTrip(port);
});

check("a second proxy of the same name is refused", async () => {
  await assert.rejects(toxiproxy.createProxy({ name: "echo", listen: "127.0.0.1:0", upstream: `127.0.0.1:${echoPort}` }), /409/);
});

check("addToxic latency adds its delay", async () => {
  const base = await roundTrip(port);
  const toxic = await proxy.addToxic({ type: "latency", stream: "downstream", toxicity: 1, attributes: { latency: 100, jitter: 0 } });
  assert.strictEqual(toxic.name, "latency_downstream");
  assert.strictEqual(toxic.attributes.latency, 100);
  const rt = (await roundTrip(port)) - base;
  assert.ok(rt >= 85 && rt <= 200, `round trip grew by ${rt} ms, not about 100`);
});

check("getToxic and toxic.update change it live", async () => {
  const toxic = await proxy.getToxic("latency_downstream");
  const updated = await toxic.update({ attributes: { latency: 300 }, toxicity: 1 });
  assert.strictEqual(updated.attributes.latency, 300);
  const rt = await roundTrip(port);
  assert.ok(rt >= 280, `round trip ${rt} ms after the update to 300`);
});

check("toxic.remove takes the delay away", async () => {
  const toxic = await proxy.getToxic("latency_downstream");
  await toxic.remove();
  const rt = await roundTrip(port);
  assert.ok(rt < 80, `round trip ${rt} ms without the toxic`);
  await assert.rejects(proxy.getToxic("latency_downstream"), /404/);
});

check("limit_data upstream cuts the request", async () => {
  await proxy.addToxic({ name: "cut", type: "limit_data", stream: "upstream", toxicity: 1, attributes: { bytes: 3 } });
  await assert.rejects(roundTrip(port, "longer than three"));
  await (await proxy.getToxic("cut")).remove();
  await roundTrip(port);
});

check("update enabled false takes it down, true brings it back", async () => {
  const down = await proxy.update({ enabled: false, listen: proxy.listen, upstream: proxy.upstream, name: "echo" });
  assert.strictEqual(down.enabled, false);
  await assert.rejects(roundTrip(port), /ECONNREFUSED/);
  const up = await proxy.update({ enabled: true, listen: proxy.listen, upstream: proxy.upstream, name: "echo" });
  assert.strictEqual(up.enabled, true);
  await roundTrip(port);
});

check("populate makes and keeps proxies; getAll lists them", async () => {
  const made = await toxiproxy.populate([
    { name: "pop", listen: "127.0.0.1:0", upstream: `127.0.0.1:${echoPort}`, enabled: true },
  ]);
  assert.ok(made.pop);
  await roundTrip(portOf(made.pop.listen));
  const all = await toxiproxy.getAll();
  assert.deepStrictEqual(Object.keys(all).sort(), ["echo", "pop"]);
  assert.strictEqual((await toxiproxy.get("pop")).upstream, `127.0.0.1:${echoPort}`);
});

check("reset enables everything and removes every toxic", async () => {
  await proxy.addToxic({ type: "timeout", stream: "upstream", toxicity: 1, attributes: { timeout: 0 } });
  await proxy.update({ enabled: false, listen: proxy.listen, upstream: proxy.upstream, name: "echo" });
  await toxiproxy.reset();
  const after = await toxiproxy.get("echo");
  assert.strictEqual(after.enabled, true);
  await roundTrip(port);
});

check("proxy.remove deletes it", async () => {
  await proxy.remove();
  await assert.rejects(toxiproxy.get("echo"), /404/);
  await assert.rejects(roundTrip(port), /ECONNREFUSED/);
});

(async () => {
  let failed = 0;
  for (const [name, fn] of checks) {
    try {
      await fn();
      console.log(`PASS ${name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e && e.message}`);
    }
  }
  process.exit(failed === 0 ? 0 : 1);
})();
