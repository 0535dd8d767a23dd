// knock for @xmpp/client (xmpp.js): withKnock(xmpp, {component}) adds
// xmpp.knock(room, token).
import { xml } from "@xmpp/client";
import { NS, NS_STANZAS, DEFAULT_TIMEOUT, checkArgs, granted, refusal, timedOut } from "./index.js";

export * from "./index.js";

/**
 * Knocks on room through gavel at component and resolves to a typed result.
 * Rejects only when the request cannot be sent (not online).
 * @param {import("@xmpp/client").Client} xmpp an online client
 * @param {string} component gavel's JID
 * @param {string} room the bare room JID
 * @param {string} [token] the JWT; absent or empty knocks as a guest
 * @param {{timeout?: number}} [opts]
 * @returns {Promise<import("./index.js").KnockResult>}
 */
export async function knock(xmpp, component, room, token, opts = {}) {
  checkArgs(component, room);
  const req = xml("iq", { type: "set", to: component }, xml("knock", { xmlns: NS, room }, token ? xml("token", {}, token) : null));
  let reply;
  try {
    reply = await xmpp.iqCaller.request(req, opts.timeout ?? DEFAULT_TIMEOUT);
  } catch (err) {
    if (err?.name === "StanzaError" && err.element) return refusal(readLtxError(err.element));
    if (err?.name === "TimeoutError") return timedOut();
    throw err;
  }
  return granted(reply.getChild("knock", NS)?.attrs ?? {});
}

/**
 * Adds knock(room, token, opts) to an @xmpp/client client.
 * @param {import("@xmpp/client").Client} xmpp
 * @param {{component: string}} cfg gavel's JID
 */
export function withKnock(xmpp, cfg) {
  checkArgs(cfg?.component, "check@example");
  xmpp.knock = (room, token, opts) => knock(xmpp, cfg.component, room, token, opts);
  return xmpp;
}

/** Reads an ltx <error/> element into refusal()'s plain values (exported for tests). */
export function readLtxError(el) {
  const e = { type: el.attrs.type, condition: "", app: "", appNS: "", text: "" };
  for (const c of el.getChildElements()) {
    const ns = c.attrs.xmlns ?? "";
    if (ns === NS_STANZAS && c.name === "text") e.text = c.text();
    else if (ns === NS_STANZAS) e.condition = c.name;
    else if (!e.app) [e.app, e.appNS] = [c.name, ns];
  }
  return e;
}
