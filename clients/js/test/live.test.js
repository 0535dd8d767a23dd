// The knock from @xmpp/client (over c2s TCP) and Strophe.js (over
// WebSocket) against a real Prosody and gavel. The Go test
// clients/clients_test.go (TestJS) starts both, mints the tokens with
// `gavel token mint` and passes them in GAVEL_KNOCK_FIXTURE; without it these
// tests are skipped: run `go test ./clients -run TestJS`.
import { test, describe as suite, after } from "node:test";
import assert from "node:assert/strict";
import { client, xml } from "@xmpp/client";
import { Strophe, $pres } from "strophe.js";
import { withKnock } from "../src/xmpp.js";
import { registerKnock } from "../src/strophe.js";

const fixture = process.env.GAVEL_KNOCK_FIXTURE ? JSON.parse(process.env.GAVEL_KNOCK_FIXTURE) : null;
const skip = fixture ? false : "GAVEL_KNOCK_FIXTURE is not set: run go test ./clients -run TestJS";
const TIMEOUT = 10_000;

// The same scenario for each library: open(user) logs in and returns
// { knock(room, token), join(room, nick) -> role of the first self-presence, close() }.
const libraries = {
  "@xmpp/client over TCP": { f: fixture?.xmpp, open: openXmpp },
  "Strophe.js over WebSocket": { f: fixture?.strophe, open: openStrophe },
};

for (const [name, { f, open }] of Object.entries(libraries)) {
  suite(name, { skip }, () => {
    const sessions = [];
    const login = async (user) => {
      const s = await open(user);
      sessions.push(s);
      return s;
    };
    after(() => Promise.all(sessions.map((s) => s.close())));

    test("a moderator token: granted owner/moderator, and the first presence says moderator", async () => {
      const alice = await login(f.users[0]);
      const r = await alice.knock(f.room, f.tokens.moderator);
      assert.equal(r.outcome, "granted");
      assert.equal(r.role, "moderator");
      assert.equal(r.affiliation, "owner");
      assert.equal(r.reason, "token-moderator");
      assert.ok(r.expires instanceof Date && r.expires > new Date(), `expires ${r.expires}`);
      assert.equal(r.room, f.room.toLowerCase());
      assert.equal(await alice.join(f.room, "alice"), "moderator");
    });

    test("a participant token: granted participant", async () => {
      const bob = await login(f.users[1]);
      const r = await bob.knock(f.room, f.tokens.participant);
      assert.deepEqual([r.outcome, r.role, r.reason], ["granted", "participant", "token-participant"]);
      assert.equal(await bob.join(f.room, "bob"), "participant");
    });

    test("refusals carry gavel's reason", async () => {
      const carol = await login(f.users[2]);
      const refusals = [
        [f.tokens.expired, "token-expired", "auth", "not-authorized"],
        [f.tokens.wrongRoom, "token-wrong-room", "auth", "forbidden"],
        ["", "token-required", "auth", "not-authorized"],
        ["not.a.jwt", "token-malformed", "auth", "not-authorized"],
      ];
      for (const [token, reason, type, condition] of refusals) {
        const r = await carol.knock(f.room, token);
        assert.deepEqual([r.outcome, r.reason, r.type, r.condition], ["refused", reason, type, condition], reason);
        assert.notEqual(r.text, "", `${reason} has a text`);
      }
    });

    test("rate-limited means retry later", async () => {
      const dave = await login(f.users[3]);
      // The tenant of slowRoom allows one knock per JID and minute, after
      // a small burst: knock until gavel says to wait.
      let r;
      for (let i = 0; i < 20; i++) {
        r = await dave.knock(f.slowRoom, "");
        if (r.outcome !== "granted") break;
      }
      assert.deepEqual([r.outcome, r.reason, r.type, r.condition], ["retry", "rate-limited", "wait", "resource-constraint"]);
    });
  });
}

async function openXmpp(user) {
  const [host, port] = fixture.tcp.split(":");
  const xmpp = client({
    service: `xmpp://${host}:${port}`,
    domain: fixture.domain,
    resource: "test",
    // PLAIN, which the test Prosody allows on loopback: xmpp.js's SCRAM
    // takes over half a second per login on a small machine.
    credentials: (authenticate) => authenticate({ username: user, password: fixture.password }, "PLAIN"),
  });
  xmpp.on("error", () => {});
  xmpp.reconnect.stop();
  withKnock(xmpp, { component: fixture.component });
  await xmpp.start();
  return {
    knock: (room, token) => xmpp.knock(room, token, { timeout: TIMEOUT }),
    join: (room, nick) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no self-presence from ${room}/${nick}`)), TIMEOUT);
        const onStanza = (st) => {
          if (!st.is("presence") || st.attrs.from?.toLowerCase() !== `${room}/${nick}`.toLowerCase()) return;
          const x = st.getChild("x", "http://jabber.org/protocol/muc#user");
          if (!x?.getChildren("status").some((s) => s.attrs.code === "110")) return;
          clearTimeout(timer);
          xmpp.removeListener("stanza", onStanza);
          resolve(x.getChild("item").attrs.role);
        };
        xmpp.on("stanza", onStanza);
        xmpp.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" }))).catch(reject);
      }),
    close: () => xmpp.stop().catch(() => {}),
  };
}

registerKnock(Strophe);

async function openStrophe(user) {
  const conn = new Strophe.Connection(fixture.websocket);
  conn.gavel.component = fixture.component;
  let disconnected;
  const closed = new Promise((resolve) => (disconnected = resolve));
  await new Promise((resolve, reject) => {
    conn.connect(`${user}@${fixture.domain}/test`, fixture.password, (status, cond) => {
      if (status === Strophe.Status.CONNECTED) resolve();
      else if (status === Strophe.Status.DISCONNECTED) disconnected();
      else if (status === Strophe.Status.CONNFAIL || status === Strophe.Status.AUTHFAIL) reject(new Error(`strophe: status ${status} ${cond ?? ""}`));
    });
  });
  return {
    knock: (room, token) => conn.gavel.knock(room, token, { timeout: TIMEOUT }),
    join: (room, nick) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no self-presence from ${room}/${nick}`)), TIMEOUT);
        conn.addHandler(
          (p) => {
            if (p.getAttribute("from")?.toLowerCase() !== `${room}/${nick}`.toLowerCase()) return true;
            const x = p.getElementsByTagName("x")[0];
            const self = [...(x?.getElementsByTagName("status") ?? [])].some((s) => s.getAttribute("code") === "110");
            if (!self) return true;
            clearTimeout(timer);
            resolve(x.getElementsByTagName("item")[0].getAttribute("role"));
            return false;
          },
          null,
          "presence",
        );
        conn.send($pres({ to: `${room}/${nick}` }).c("x", { xmlns: "http://jabber.org/protocol/muc" }));
      }),
    close: () => {
      conn.disconnect();
      return closed;
    },
  };
}
