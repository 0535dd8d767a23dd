// knock for Strophe.js: registerKnock(Strophe) adds the connection plugin
// "gavel", so that conn.gavel.knock(room, token) knocks through the
// component set with conn.gavel.component = "mod.example.com".
//
// The plugin takes the Strophe namespace as an argument instead of
// importing strophe.js, so it works with the ES module, the UMD global and
// the Node.js build alike, and never loads a second copy.
import { NS, NS_STANZAS, DEFAULT_TIMEOUT, checkArgs, granted, refusal, timedOut } from "./index.js";

export * from "./index.js";

/**
 * Knocks on room through gavel at component and resolves to a typed result.
 * @param {object} Strophe the Strophe namespace (import { Strophe } from "strophe.js")
 * @param {object} conn a connected Strophe.Connection
 * @param {string} component gavel's JID
 * @param {string} room the bare room JID
 * @param {string} [token] the JWT; absent or empty knocks as a guest
 * @param {{timeout?: number}} [opts]
 * @returns {Promise<import("./index.js").KnockResult>}
 */
export function knock(Strophe, conn, component, room, token, opts = {}) {
  checkArgs(component, room);
  const iq = new Strophe.Builder("iq", { type: "set", to: component, id: conn.getUniqueId("knock") }).c("knock", { xmlns: NS, room });
  if (token) iq.c("token").t(token);
  return new Promise((resolve) => {
    conn.sendIQ(
      iq.tree(),
      (reply) => resolve(granted(attrs(child(reply, "knock", NS)))),
      (reply) => {
        // Strophe calls back with null when the timeout passes.
        if (!reply) return resolve(timedOut());
        resolve(refusal(readDomError(child(reply, "error", null))));
      },
      opts.timeout ?? DEFAULT_TIMEOUT,
    );
  });
}

/**
 * Registers the "gavel" connection plugin on Strophe: every connection
 * made afterwards has conn.gavel.knock(room, token, opts).
 * @param {object} Strophe the Strophe namespace
 */
export function registerKnock(Strophe) {
  Strophe.addConnectionPlugin("gavel", {
    component: "",
    init(conn) {
      this._conn = conn;
    },
    knock(room, token, opts) {
      return knock(Strophe, this._conn, this.component, room, token, opts);
    },
  });
}

function child(el, name, ns) {
  for (let c = el?.firstChild; c; c = c.nextSibling) {
    if (c.nodeType === 1 && localName(c) === name && (ns === null || c.namespaceURI === ns || c.getAttribute("xmlns") === ns)) return c;
  }
  return null;
}

function localName(el) {
  return el.localName ?? el.nodeName.replace(/^.*:/, "");
}

function attrs(el) {
  const out = {};
  for (const a of el?.attributes ?? []) out[a.name] = a.value;
  return out;
}

/** Reads a DOM <error/> element into refusal()'s plain values (exported for tests). */
export function readDomError(el) {
  const e = { type: el?.getAttribute("type") ?? "", condition: "", app: "", appNS: "", text: "" };
  for (let c = el?.firstChild; c; c = c.nextSibling) {
    if (c.nodeType !== 1) continue;
    const ns = c.namespaceURI || c.getAttribute("xmlns") || "";
    if (ns === NS_STANZAS && localName(c) === "text") e.text = c.textContent;
    else if (ns === NS_STANZAS) e.condition = localName(c);
    else if (!e.app) [e.app, e.appNS] = [localName(c), ns];
  }
  return e;
}
