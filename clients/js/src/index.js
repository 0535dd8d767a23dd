// @gavel/knock: the gavel knock (urn:gavel:knock:0, docs/protocol.md) as
// typed results. This module holds what every client shares: the namespace,
// the request's shape and the mapping from an answer to a result. The
// adapters for @xmpp/client (./xmpp.js) and Strophe.js (./strophe.js) only
// read their library's elements into plain values and call it.

/** The knock namespace, also gavel's disco#info feature. */
export const NS = "urn:gavel:knock:0";

/** RFC 6120's namespace of defined stanza error conditions. */
export const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

/** Prosody's marker for "the component is not connected". */
export const NS_PROSODY_COMPONENT = "xmpp:prosody.im/protocol/component";

/** How long a knock waits for gavel's answer, in milliseconds. */
export const DEFAULT_TIMEOUT = 10_000;

/**
 * The application conditions gavel sends with type "wait": the knock may
 * succeed later, unchanged. Every other refusal stands until something
 * changes (a new token, an unban, a configuration).
 */
export const RETRY_REASONS = Object.freeze([
  "rate-limited",
  "token-key-unavailable",
  "room-unavailable",
  "shutting-down",
]);

/**
 * @typedef {object} Granted
 * @property {"granted"} outcome
 * @property {string} room         the room JID, as gavel normalized it
 * @property {string} affiliation  owner, member or none
 * @property {string} role         the role of the first presence: moderator, participant or visitor
 * @property {string} reason       why (token-moderator, first-joiner, ...)
 * @property {Date|null} expires   when rights from the token end, or null
 */

/**
 * @typedef {object} RetryLater
 * @property {"retry"} outcome
 * @property {string} reason     gavel's application condition (rate-limited, ...),
 *                               "not-connected" when gavel is offline,
 *                               "timeout" when no answer came,
 *                               else the stanza error condition
 * @property {string} type       the stanza error type ("wait"), "" for a timeout
 * @property {string} condition  the defined condition, "" for a timeout
 * @property {string} text       the human-readable text, may be ""
 */

/**
 * @typedef {object} Refused
 * @property {"refused"} outcome
 * @property {string} reason     gavel's application condition (token-expired,
 *                               banned, ...), else the stanza error condition
 * @property {string} type       the stanza error type (auth, cancel, modify)
 * @property {string} condition  the defined condition (not-authorized, ...)
 * @property {string} text       the human-readable text, may be ""
 */

/** @typedef {Granted|RetryLater|Refused} KnockResult */

/**
 * Checks a knock's arguments; throws a TypeError naming the bad one.
 * @param {string} component gavel's JID
 * @param {string} room the bare room JID
 */
export function checkArgs(component, room) {
  if (typeof component !== "string" || component === "") {
    throw new TypeError("@gavel/knock: component (gavel's JID) is required");
  }
  if (typeof room !== "string" || !/^[^@/\s]+@[^@/\s]+$/.test(room)) {
    throw new TypeError(`@gavel/knock: room must be a bare room JID, got ${JSON.stringify(room)}`);
  }
}

/**
 * The result of a knock answered with type "result".
 * @param {{room?: string, affiliation?: string, role?: string, reason?: string, expires?: string}} attrs
 *   the attributes of the answer's <knock/> element
 * @returns {Granted}
 */
export function granted(attrs) {
  const expires = attrs.expires ? new Date(attrs.expires) : null;
  return {
    outcome: "granted",
    room: attrs.room ?? "",
    affiliation: attrs.affiliation ?? "",
    role: attrs.role ?? "",
    reason: attrs.reason ?? "",
    expires: expires && !Number.isNaN(expires.getTime()) ? expires : null,
  };
}

/**
 * The result of a knock answered with type "error". A refusal of type
 * "wait" (RFC 6120: retry after waiting) is a RetryLater, every other a
 * Refused; the reason is gavel's application condition when there is one.
 * @param {{type?: string, condition?: string, app?: string, appNS?: string, text?: string}} e
 *   the error's type attribute, defined condition, first other child
 *   (name and namespace) and text
 * @returns {RetryLater|Refused}
 */
export function refusal(e) {
  const type = e.type ?? "";
  const condition = e.condition ?? "";
  let reason = condition || "undefined-condition";
  if (e.app && e.appNS === NS) reason = e.app;
  else if (e.app === "not-connected" && e.appNS === NS_PROSODY_COMPONENT) reason = "not-connected";
  return {
    outcome: type === "wait" ? "retry" : "refused",
    reason,
    type,
    condition,
    text: e.text ?? "",
  };
}

/**
 * The result of a knock that got no answer in time: knocking again is safe
 * (a knock replaces the grant).
 * @returns {RetryLater}
 */
export function timedOut() {
  return { outcome: "retry", reason: "timeout", type: "", condition: "", text: "no answer from gavel in time" };
}

/**
 * One line for people: "granted: moderator (token-moderator)",
 * "retry later: rate-limited", "refused: token-expired".
 * @param {KnockResult} r
 */
export function describe(r) {
  switch (r.outcome) {
    case "granted":
      return `granted: ${r.role} (${r.reason})`;
    case "retry":
      return `retry later: ${r.reason}`;
    default:
      return `refused: ${r.reason}`;
  }
}
