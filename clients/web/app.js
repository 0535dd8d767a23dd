// The page behind index.html: log in over Prosody's WebSocket with
// Strophe.js, knock with @gavel/knock, join the room and show its
// occupants with their roles. Query parameters prefill the form
// (?ws=...&jid=...&component=...&room=...&nick=...).
//
// gavel is an occupant of every room it governs, as a moderator. The
// roster leaves it out and says "moderated by gavel" instead, so that the
// roles shown are the people's: it is the occupant whose real JID is
// gavel's (when the room shows JIDs) or whose nickname is gavel's
// (component.nick in gavel.yml, "gavel" unless ?gavelnick= says otherwise).
import { Strophe, $pres } from "strophe.js";
import { registerKnock, describe } from "@gavel/knock/strophe";

const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";

registerKnock(Strophe);

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
for (const name of ["ws", "jid", "password", "component", "room", "nick", "token"]) {
  if (params.has(name)) $(name).value = params.get(name);
}
const gavelNick = params.get("gavelnick") ?? "gavel";

function status(outcome, text) {
  $("status").dataset.outcome = outcome;
  $("status").textContent = text;
}

let conn = null;

$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("join").disabled = true;
  try {
    await knockAndJoin();
  } catch (err) {
    status("error", `error: ${err.message}`);
  } finally {
    $("join").disabled = false;
  }
});

async function knockAndJoin() {
  const v = (id) => $(id).value.trim();
  if (conn) conn.disconnect();
  status("", "Connecting…");
  conn = new Strophe.Connection(v("ws"));
  conn.gavel.component = v("component");
  await new Promise((resolve, reject) => {
    conn.connect(v("jid"), $("password").value, (s, cond) => {
      if (s === Strophe.Status.CONNECTED) resolve();
      else if (s === Strophe.Status.AUTHFAIL) reject(new Error("login failed: wrong JID or password"));
      else if (s === Strophe.Status.CONNFAIL) reject(new Error(`cannot connect: ${cond ?? "connection failed"}`));
    });
  });
  status("", "Knocking…");
  const room = v("room");
  const r = await conn.gavel.knock(room, v("token"));
  if (r.outcome !== "granted") {
    status(r.outcome, r.text ? `${describe(r)}: ${r.text}` : describe(r));
    return;
  }
  status("granted", `${describe(r)}: joining as ${r.role}…`);
  join(room, v("nick"), r);
}

// join enters the room and keeps the roster table up to date. The room
// sends every occupant's presence, then ours (status 110): the table is
// then the first roster, and #roster gets data-state="ready".
function join(room, nick, granted) {
  const occupants = new Map();
  const table = $("roster");
  table.hidden = false;
  table.dataset.state = "joining";
  table.tBodies[0].replaceChildren();
  $("moderator-service").hidden = true;
  const me = `${room}/${nick}`.toLowerCase();
  const component = conn.gavel.component.toLowerCase();

  conn.addHandler((p) => {
    const from = p.getAttribute("from") ?? "";
    if (Strophe.getBareJidFromJid(from).toLowerCase() !== room.toLowerCase()) return true;
    if (p.getAttribute("type") === "error") {
      const cond = p.getElementsByTagName("error")[0]?.firstElementChild?.localName ?? "error";
      status("error", `the room refused the join: ${cond}`);
      return false;
    }
    const x = [...p.getElementsByTagName("x")].find((e) => e.namespaceURI === MUC_USER);
    const item = x?.getElementsByTagName("item")[0];
    const occupant = Strophe.getResourceFromJid(from);
    const realJID = (item?.getAttribute("jid") ?? "").toLowerCase();
    if (occupant !== nick && (occupant === gavelNick || Strophe.getDomainFromJid(realJID) === component && !Strophe.getNodeFromJid(realJID))) {
      $("moderator-service").hidden = p.getAttribute("type") === "unavailable";
      return true;
    }
    if (p.getAttribute("type") === "unavailable") occupants.delete(occupant);
    else occupants.set(occupant, { role: item?.getAttribute("role") ?? "", affiliation: item?.getAttribute("affiliation") ?? "" });
    render(occupants, nick);
    const self = from.toLowerCase() === me && [...(x?.getElementsByTagName("status") ?? [])].some((s) => s.getAttribute("code") === "110");
    if (self && table.dataset.state !== "ready") {
      table.dataset.state = "ready";
      status("granted", `joined ${room} as ${occupants.get(occupant)?.role} (${granted.reason})`);
    }
    return true;
  }, null, "presence");

  conn.send($pres({ to: `${room}/${nick}` }).c("x", { xmlns: MUC }));
}

function render(occupants, nick) {
  const rows = [...occupants].sort(([a], [b]) => a.localeCompare(b)).map(([name, o]) => {
    const tr = document.createElement("tr");
    tr.dataset.nick = name;
    tr.dataset.role = o.role;
    if (name === nick) tr.className = "self";
    for (const text of [name, o.role, o.affiliation]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  $("roster").tBodies[0].replaceChildren(...rows);
}
