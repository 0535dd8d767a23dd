// The mapping from gavel's answers to typed results, on golden stanzas
// from docs/protocol.md read by both libraries' parsers. No server needed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DOMParser } from "@xmldom/xmldom";
import { parse } from "ltx";
import { refusal, granted, describe, checkArgs, RETRY_REASONS, NS } from "../src/index.js";
import { readLtxError } from "../src/xmpp.js";
import { readDomError } from "../src/strophe.js";

const err = (type, cond, app, appNS = NS, text = "why") =>
  `<error xmlns='jabber:client' type='${type}'><${cond} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
  `<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>${text}</text>` +
  (app ? `<${app} xmlns='${appNS}'/>` : "") +
  `</error>`;

// Every row of docs/protocol.md §5, and the server's answer while gavel is away.
const cases = [
  ["bad-room", "modify", "bad-request", "refused"],
  ["not-governed", "cancel", "item-not-found", "refused"],
  ["rate-limited", "wait", "resource-constraint", "retry"],
  ["token-required", "auth", "not-authorized", "refused"],
  ["banned", "auth", "forbidden", "refused"],
  ["token-expired", "auth", "not-authorized", "refused"],
  ["token-not-yet-valid", "auth", "not-authorized", "refused"],
  ["token-issued-in-future", "auth", "not-authorized", "refused"],
  ["token-bad-signature", "auth", "not-authorized", "refused"],
  ["token-unknown-key", "auth", "not-authorized", "refused"],
  ["token-algorithm-not-allowed", "auth", "not-authorized", "refused"],
  ["token-malformed", "auth", "not-authorized", "refused"],
  ["token-wrong-type", "auth", "not-authorized", "refused"],
  ["token-too-large", "auth", "not-authorized", "refused"],
  ["token-missing-claim", "auth", "not-authorized", "refused"],
  ["token-wrong-issuer", "auth", "not-authorized", "refused"],
  ["token-wrong-audience", "auth", "not-authorized", "refused"],
  ["token-wrong-room", "auth", "forbidden", "refused"],
  ["token-wrong-tenant", "auth", "forbidden", "refused"],
  ["token-key-unavailable", "wait", "service-unavailable", "retry"],
  ["room-unavailable", "wait", "service-unavailable", "retry"],
  ["shutting-down", "wait", "service-unavailable", "retry"],
];

const parsers = {
  ltx: (s) => readLtxError(parse(s)),
  dom: (s) => readDomError(new DOMParser().parseFromString(s, "text/xml").documentElement),
};

for (const [name, read] of Object.entries(parsers)) {
  test(`${name}: every documented refusal maps to its outcome and reason`, () => {
    for (const [app, type, cond, outcome] of cases) {
      const r = refusal(read(err(type, cond, app)));
      assert.deepEqual(r, { outcome, reason: app, type, condition: cond, text: "why" }, app);
    }
  });

  test(`${name}: gavel offline (Prosody's not-connected) means retry`, () => {
    const r = refusal(read(err("wait", "remote-server-timeout", "not-connected", "xmpp:prosody.im/protocol/component")));
    assert.equal(r.outcome, "retry");
    assert.equal(r.reason, "not-connected");
  });

  test(`${name}: an error without gavel's condition is named by its defined condition`, () => {
    assert.deepEqual(refusal(read(err("cancel", "service-unavailable", "", NS, ""))), {
      outcome: "refused", reason: "service-unavailable", type: "cancel", condition: "service-unavailable", text: "",
    });
    // Another namespace's element is not gavel's reason.
    assert.equal(refusal(read(err("auth", "forbidden", "other", "urn:example"))).reason, "forbidden");
  });
}

test("the retry reasons are exactly the documented wait conditions", () => {
  assert.deepEqual([...RETRY_REASONS].sort(), cases.filter((c) => c[3] === "retry").map((c) => c[0]).sort());
});

test("granted reads the result attributes", () => {
  const g = granted({ room: "r@muc", affiliation: "owner", role: "moderator", reason: "token-moderator", expires: "2026-11-24T11:00:00Z" });
  assert.deepEqual(g, {
    outcome: "granted", room: "r@muc", affiliation: "owner", role: "moderator", reason: "token-moderator",
    expires: new Date("2026-11-24T11:00:00Z"),
  });
  assert.equal(granted({ role: "participant" }).expires, null);
  assert.equal(granted({ expires: "not a date" }).expires, null);
  assert.equal(describe(g), "granted: moderator (token-moderator)");
  assert.equal(describe(refusal({ type: "auth", condition: "not-authorized", app: "token-expired", appNS: NS })), "refused: token-expired");
  assert.equal(describe(refusal({ type: "wait", condition: "resource-constraint", app: "rate-limited", appNS: NS })), "retry later: rate-limited");
});

test("bad arguments are refused before anything is sent", () => {
  assert.throws(() => checkArgs("", "r@muc"), /component/);
  assert.throws(() => checkArgs("mod.example", "muc.example"), /bare room JID/);
  assert.throws(() => checkArgs("mod.example", "r@muc/nick"), /bare room JID/);
  checkArgs("mod.example", "[acme]r@muc.example");
});
