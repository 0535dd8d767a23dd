// gavel console: plain JavaScript, no build step, no framework. It reads
// the JSON endpoints under /console/api/ and sends every action with the
// session's CSRF token, after a confirmation.

const $ = (sel, el = document) => el.querySelector(sel);

// h makes an element: h("td", {class: "x", dataset: {nick: "a"}}, "text", child).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let session = null;

async function api(path, opts = {}) {
  const init = { method: opts.method || "GET", headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (opts.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  if (init.method !== "GET") init.headers["X-CSRF-Token"] = session.csrf;
  const resp = await fetch("api/" + path, init);
  if (resp.status === 401) {
    location.reload();
    throw new Error("signed out");
  }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.message || resp.statusText);
  return data;
}

function toast(text, bad) {
  const t = $("#toast");
  t.textContent = text;
  t.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, 6000);
}

// confirmAction asks before an action: it resolves to the fields' values,
// or null when cancelled.
function confirmAction({ title, text, fields = [], ok = "Confirm" }) {
  const dlg = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = ok;
  const box = $("#confirm-fields");
  box.replaceChildren();
  for (const f of fields) {
    const id = "confirm-" + f.name;
    let input;
    if (f.options) {
      input = h("select", { id, name: f.name }, f.options.map(([v, label]) => h("option", { value: v, selected: v === f.value }, label)));
    } else {
      input = h("input", { id, name: f.name, value: f.value || "", placeholder: f.placeholder || "", autocomplete: "off", maxlength: "500" });
    }
    box.append(h("label", { for: id }, f.label, input));
  }
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => {
      if (dlg.returnValue !== "ok") return resolve(null);
      const values = {};
      for (const f of fields) values[f.name] = $("#confirm-" + f.name).value;
      resolve(values);
    }, { once: true });
    dlg.returnValue = "";
    dlg.showModal();
    (box.querySelector("input, select") || $("#confirm-ok")).focus();
  });
}

async function act(path, body, done) {
  try {
    const res = await api(path, { method: "POST", body });
    toast(done + (res.warning ? " (" + res.warning + ")" : ""));
    return res;
  } catch (e) {
    toast(e.message, true);
    return null;
  }
}

// ---- countdowns --------------------------------------------------------

function left(iso, now = Date.now()) {
  const ms = Date.parse(iso) - now;
  if (ms <= 0) return "ended";
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hh = Math.floor(s / 3600); s -= hh * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d > 0) return `${d}d ${hh}h`;
  if (hh > 0) return `${hh}h ${String(m).padStart(2, "0")}m`;
  return `${m}m ${String(s).padStart(2, "0")}s`;
}

function countdown(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso, title: new Date(iso).toLocaleString(), dataset: { expires: iso } }, left(iso));
}

setInterval(() => {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-expires]")) el.textContent = left(el.dataset.expires, now);
}, 1000);

// ---- meetings now ------------------------------------------------------

const rooms = { q: "", page: 1, source: null, last: null, occFilter: new Map(), occAll: new Set(), roleChoice: new Map() };
const OCC_PAGE = 50;

function openStream() {
  if (rooms.source) rooms.source.close();
  const qs = new URLSearchParams({ q: rooms.q, page: String(rooms.page) });
  const src = new EventSource("api/events?" + qs);
  rooms.source = src;
  const live = $("#live");
  src.addEventListener("hello", () => { live.textContent = "live"; live.dataset.state = "live"; });
  src.addEventListener("rooms", (ev) => {
    live.textContent = "live"; live.dataset.state = "live";
    rooms.last = JSON.parse(ev.data);
    renderRooms();
  });
  src.addEventListener("signed-out", () => location.reload());
  src.onerror = () => { live.textContent = "reconnecting…"; live.dataset.state = "down"; };
}

// keep remembers the focused control across a re-render.
function keep(render) {
  const a = document.activeElement;
  const key = a && a.dataset ? a.dataset.key : null;
  const sel = a && "selectionStart" in a ? [a.selectionStart, a.selectionEnd] : null;
  render();
  if (!key) return;
  const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (again) {
    again.focus();
    if (sel && again.setSelectionRange) try { again.setSelectionRange(sel[0], sel[1]); } catch { /* not a text input */ }
  }
}

function renderRooms() {
  const p = rooms.last;
  if (!p) return;
  keep(() => {
    const list = $("#rooms");
    $("#rooms-summary").textContent =
      `${p.total} of ${p.all} room${p.all === 1 ? "" : "s"}, ${p.occupants} occupant${p.occupants === 1 ? "" : "s"}` + (p.partial ? " (some rooms did not answer)" : "");
    list.replaceChildren(...(p.rooms.length ? p.rooms.map(roomCard) : [h("p", { class: "empty" }, p.all ? "No room matches the filter." : "No meeting is going on.")]));
    const pager = $("#rooms-pager");
    pager.replaceChildren();
    if (p.pages > 1) {
      pager.append(
        h("button", { type: "button", disabled: p.page <= 1, dataset: { key: "page-prev" }, onclick: () => goPage(p.page - 1) }, "‹ Previous"),
        h("span", {}, ` page ${p.page} of ${p.pages} `),
        h("button", { type: "button", disabled: p.page >= p.pages, dataset: { key: "page-next" }, onclick: () => goPage(p.page + 1) }, "Next ›"));
    }
  });
}

function goPage(n) {
  rooms.page = n;
  openStream();
}

function roomCard(r) {
  const f = session.features;
  const key = (what) => r.jid + "|" + what;
  const actions = h("div", { class: "actions" });
  if (f.lock) {
    actions.append(h("button", { type: "button", dataset: { key: key("lock"), action: "lock" }, onclick: () => lockRoom(r) }, r.locked ? "Unlock…" : "Lock…"));
  }
  if (f.policy) {
    actions.append(h("button", { type: "button", dataset: { key: key("policy"), action: "policy" }, onclick: () => switchPolicy(r) }, "Policy…"));
  }
  actions.append(h("button", { type: "button", class: "danger", dataset: { key: key("destroy"), action: "destroy" }, onclick: () => destroyRoom(r) }, "Destroy…"));

  const filter = rooms.occFilter.get(r.jid) || "";
  let occ = r.occupants;
  if (filter) {
    const q = filter.toLowerCase();
    occ = occ.filter((o) => [o.nick, o.jid, o.userId || ""].some((s) => s.toLowerCase().includes(q)));
  }
  const all = rooms.occAll.has(r.jid);
  const shown = all ? occ : occ.slice(0, OCC_PAGE);
  const body = h("tbody", {}, shown.map((o) => occupantRow(r, o)));
  const tools = h("div", { class: "occ-tools" });
  if (r.occupants.length > 10) {
    tools.append(h("label", { class: "search" }, "Find occupant ",
      h("input", { type: "search", value: filter, dataset: { key: key("occ-filter") }, oninput: (e) => { rooms.occFilter.set(r.jid, e.target.value); renderRooms(); } })));
  }
  if (occ.length > shown.length) {
    tools.append(h("button", { type: "button", dataset: { key: key("more") }, onclick: () => { rooms.occAll.add(r.jid); renderRooms(); } }, `Show all ${occ.length}`));
  }
  return h("article", { class: "room card", dataset: { room: r.jid } },
    h("header", {},
      h("h3", {}, r.name, h("span", { class: "muc" }, "@" + r.muc)),
      h("span", { class: "badges" },
        h("span", { class: "badge", title: "policy" }, r.override ? `${r.override} (was ${r.policy})` : r.policy),
        r.locked ? h("span", { class: "badge warn" }, "locked") : null,
        r.state !== "joined" ? h("span", { class: "badge warn" }, r.state) : null,
        h("span", { class: "badge quiet" }, `${r.occupants.length} in the room`)),
      actions),
    tools,
    r.occupants.length === 0 ? h("p", { class: "muted" }, "Nobody is in the room.") :
      h("div", { class: "scroll" }, h("table", { class: "occupants" },
        h("thead", {}, h("tr", {}, ["Nick", "JID", "User id", "Affiliation", "Role", "Why", "Rights end", ""].map((t) => h("th", {}, t ? t : h("span", { class: "sr" }, "Actions"))))),
        body)));
}

function occupantRow(r, o) {
  const key = (what) => r.jid + "|" + o.nick + "|" + what;
  const choiceKey = r.jid + "|" + o.nick;
  const current = o.role === "visitor" ? "viewer" : o.role === "moderator" ? "moderator" : "participant";
  const cells = [
    ["Nick", h("strong", {}, o.nick)],
    ["JID", o.jid],
    ["User id", o.userId || h("span", { class: "muted" }, "—")],
    ["Affiliation", o.affiliation],
    ["Role", h("span", { class: "role role-" + o.role }, o.role)],
    ["Why", o.reason ? h("code", {}, o.reason) : h("span", { class: "muted" }, "—")],
    ["Rights end", countdown(o.expires)],
  ].map(([label, v]) => h("td", { dataset: { label } }, v));
  const acts = h("td", { class: "actions", dataset: { label: "Actions" } });
  if (session.features.setRole) {
    const sel = h("select", { "aria-label": `New role for ${o.nick}`, dataset: { key: key("role-choice") },
      onchange: (e) => rooms.roleChoice.set(choiceKey, e.target.value) },
    [["moderator", "moderator"], ["participant", "participant"], ["viewer", "viewer"]].map(([v, l]) =>
      h("option", { value: v, selected: (rooms.roleChoice.get(choiceKey) || current) === v }, l)));
    acts.append(sel, h("button", { type: "button", dataset: { key: key("role"), action: "role" }, onclick: () => setRole(r, o, sel.value) }, "Set role…"));
  }
  acts.append(
    h("button", { type: "button", dataset: { key: key("kick"), action: "kick" }, onclick: () => kick(r, o) }, "Kick…"),
    h("button", { type: "button", class: "danger", dataset: { key: key("ban"), action: "ban" }, onclick: () => banOccupant(r, o) }, "Ban…"));
  return h("tr", { dataset: { nick: o.nick, role: o.role, affiliation: o.affiliation, reason: o.reason || "" } }, cells, acts);
}

const durations = [["1h", "1 hour"], ["24h", "1 day"], ["168h", "1 week"], ["", "ever"]];

async function setRole(r, o, role) {
  const v = await confirmAction({ title: `Make ${o.nick} ${role}?`, text: `In ${r.name}: ${o.nick} (${o.jid}) is ${o.role} now.`, ok: "Set role" });
  if (!v) return;
  if (await act("rooms/role", { room: r.jid, nick: o.nick, role }, `${o.nick} is now ${role}`)) rooms.roleChoice.delete(r.jid + "|" + o.nick);
}

async function kick(r, o) {
  const v = await confirmAction({ title: `Kick ${o.nick}?`, text: `${o.nick} (${o.jid}) leaves ${r.name}; they may join again.`,
    fields: [{ name: "reason", label: "Reason (shown to them)" }], ok: "Kick" });
  if (v) await act("rooms/kick", { room: r.jid, nick: o.nick, reason: v.reason }, `${o.nick} was kicked`);
}

async function banOccupant(r, o) {
  const kinds = [];
  if (o.userId) kinds.push(["user:" + o.userId, "user id " + o.userId]);
  kinds.push(["jid:" + o.jid, "JID " + o.jid]);
  const v = await confirmAction({ title: `Ban ${o.nick}?`, text: `Every room of the tenant refuses them, and they leave the rooms they are in.`,
    fields: [{ name: "who", label: "Ban by", options: kinds, value: kinds[0][0] },
      { name: "reason", label: "Reason" }, { name: "duration", label: "For", options: durations, value: "24h" }], ok: "Ban" });
  if (!v) return;
  const i = v.who.indexOf(":");
  await act("bans", { kind: v.who.slice(0, i), value: v.who.slice(i + 1), reason: v.reason, duration: v.duration }, `${o.nick} is banned`);
}

async function destroyRoom(r) {
  const v = await confirmAction({ title: `Destroy ${r.name}?`, text: `Everyone in it (${r.occupants.length}) is removed and the room is gone.`,
    fields: [{ name: "reason", label: "Reason (shown to the occupants)" }], ok: "Destroy" });
  if (v) await act("rooms/destroy", { room: r.jid, reason: v.reason }, `${r.name} was destroyed`);
}

async function lockRoom(r) {
  const locked = !r.locked;
  const v = await confirmAction({ title: `${locked ? "Lock" : "Unlock"} ${r.name}?`,
    text: locked ? "Nobody new can join until it is unlocked." : "Joiners are let in again as the policy says.", ok: locked ? "Lock" : "Unlock" });
  if (v) await act("rooms/lock", { room: r.jid, locked }, `${r.name} is ${locked ? "locked" : "unlocked"}`);
}

async function switchPolicy(r) {
  const v = await confirmAction({ title: `Switch the policy of ${r.name}?`, text: `It is ${r.override || r.policy} now.`,
    fields: [{ name: "policy", label: "Policy", options: [["token", "token"], ["auto-owner", "auto-owner"], ["all-owners", "all-owners"]], value: r.override || r.policy }], ok: "Switch" });
  if (v) await act("rooms/policy", { room: r.jid, policy: v.policy }, `${r.name} now uses ${v.policy}`);
}

// ---- bans ---------------------------------------------------------------

const bans = { q: "" };

async function loadBans() {
  try {
    const data = await api("bans?" + new URLSearchParams({ q: bans.q }));
    $("#bans-summary").textContent = data.total > data.bans.length ? `${data.bans.length} of ${data.total} shown: search to narrow` : `${data.total} ban${data.total === 1 ? "" : "s"}`;
    keep(() => $("#bans tbody").replaceChildren(...data.bans.map(banRow)));
  } catch (e) { toast(e.message, true); }
}

function banRow(b) {
  const shown = b.kind === "token" ? "sha256:" + b.value.slice(0, 16) : b.value;
  return h("tr", { dataset: { kind: b.kind, value: b.value } },
    h("td", { dataset: { label: "Kind" } }, b.kind),
    h("td", { dataset: { label: "Value" } }, h("code", {}, shown)),
    h("td", { dataset: { label: "Reason" } }, b.reason || h("span", { class: "muted" }, "—")),
    h("td", { dataset: { label: "Issued by" } }, b.by),
    h("td", { dataset: { label: "Issued" } }, b.created ? new Date(b.created).toLocaleString() : ""),
    h("td", { dataset: { label: "Ends" } }, b.expires ? countdown(b.expires) : "never"),
    h("td", { class: "actions" }, h("button", { type: "button", dataset: { key: "lift|" + b.kind + "|" + b.value }, onclick: () => lift(b, shown) }, "Lift…")));
}

async function lift(b, shown) {
  const v = await confirmAction({ title: `Lift the ban of ${shown}?`, text: b.reason ? `Reason given: ${b.reason}` : "", ok: "Lift" });
  if (v && await act("bans/lift", { kind: b.kind, value: b.value }, `the ban of ${shown} is lifted`)) loadBans();
}

async function banFromForm(e) {
  e.preventDefault();
  const kind = $("#ban-kind").value, value = $("#ban-value").value.trim(), reason = $("#ban-reason").value, duration = $("#ban-duration").value;
  if (!value) return;
  const shown = kind === "token" ? "this token" : value;
  const v = await confirmAction({ title: `Ban ${shown}?`, text: `Every room of the tenant refuses it${duration ? "" : " for ever"}; present occupants it matches leave.`, ok: "Ban" });
  if (v && await act("bans", { kind, value, reason, duration }, `${shown} is banned`)) {
    $("#ban-form").reset();
    loadBans();
  }
}

// ---- scheduled meetings ----------------------------------------------------

async function loadMeetings() {
  try {
    const data = await api("meetings");
    $("#meetings tbody").replaceChildren(...data.meetings.map((m) => h("tr", {},
      h("td", { dataset: { label: "Meeting" } }, h("code", {}, m.meetingId)),
      h("td", { dataset: { label: "Room" } }, m.roomName),
      h("td", { dataset: { label: "State" } }, m.state),
      h("td", { dataset: { label: "Ends" } }, m.state === "active" ? countdown(m.endDate) : new Date(m.endDate).toLocaleString()),
      h("td", { dataset: { label: "Host until" } }, new Date(m.hostUntil).toLocaleString()))));
  } catch (e) { toast(e.message, true); }
}

function copyField(label, value) {
  const id = "copy-" + label.replace(/\W+/g, "-");
  const input = h("input", { id, value, readonly: true });
  return h("div", { class: "copy" }, h("label", { for: id }, label), input,
    h("button", { type: "button", onclick: async () => {
      try { await navigator.clipboard.writeText(value); } catch { input.select(); document.execCommand("copy"); }
      toast(label + " copied");
    } }, "Copy"));
}

async function createMeeting(e) {
  e.preventDefault();
  const end = new Date($("#meeting-end").value);
  if (isNaN(end)) return;
  const body = { endDate: end.toISOString().replace(/\.\d+Z$/, "Z"), roomNamePrefix: $("#meeting-prefix").value, host: $("#meeting-host").checked, viewer: $("#meeting-viewer").checked };
  const v = await confirmAction({ title: "Create a meeting?", text: `It ends ${end.toLocaleString()}. Its links are shown once.`, ok: "Create" });
  if (!v) return;
  const m = await act("meetings", body, "meeting created");
  if (!m) return;
  const box = $("#meeting-created");
  const link = (url, tok) => url || tok;
  box.replaceChildren(h("h3", {}, `Meeting ${m.meetingId}: ${m.roomName}`),
    h("p", { class: "muted" }, m.roomUrl ? "Copy the links now: gavel keeps only the hashes of their tokens." : "No URL template is set for this tenant: these are the tokens."),
    m.tokens.host ? copyField("host link", link(m.hostRoomUrl, m.tokens.host)) : null,
    copyField("participant link", link(m.roomUrl, m.tokens.participant)),
    m.tokens.viewer ? copyField("viewer link", link(m.viewerRoomUrl, m.tokens.viewer)) : null);
  box.hidden = false;
  loadMeetings();
}

// ---- health -------------------------------------------------------------

const svgNS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

async function loadHealth() {
  let d;
  try { d = await api("health"); } catch (e) { toast(e.message, true); return; }
  $("#health-servers").replaceChildren(...(d.servers.length ? d.servers.map((x) => h("p", {},
    h("span", { class: "dot " + (x.connected ? "ok" : "bad") }), `${x.address}: ${x.connected ? "connected" : "not connected"}, ${x.reconnects} reconnect${x.reconnects === 1 ? "" : "s"}`)) : [h("p", { class: "muted" }, "no data")]));
  $("#health-store").textContent = d.store;
  $("#health-ready").textContent = d.ready;
  const t = d.tokenValidation;
  $("#health-token").textContent = t.count ? `${t.count} validations, mean ${t.meanMs.toFixed(2)} ms, p95 ≤ ${t.p95Ms.toFixed(2)} ms` : "no validation in this period";
  const outcomes = Object.keys(d.knocks.outcomes).filter((o) => d.knocks.totals[o] > 0).sort((a, b) => (a === "granted" ? -1 : b === "granted" ? 1 : a.localeCompare(b)));
  const minutes = Math.max(1, d.knocks.minutes);
  // Sixty slots, the latest minute on the right.
  const W = 600, H = 160, bw = W / 60, x0 = (60 - Math.min(minutes, 60)) * bw;
  let peak = 1;
  for (let i = 0; i < minutes; i++) peak = Math.max(peak, outcomes.reduce((n, o) => n + (d.knocks.outcomes[o][i] || 0), 0));
  const bars = [];
  for (let i = 0; i < minutes; i++) {
    let y = H;
    outcomes.forEach((o, j) => {
      const v = d.knocks.outcomes[o][i] || 0;
      if (!v) return;
      const hgt = (v / peak) * (H - 10);
      y -= hgt;
      bars.push(s("rect", { x: (x0 + i * bw + 1).toFixed(1), y: y.toFixed(1), width: Math.max(1, bw - 2).toFixed(1), height: hgt.toFixed(1), class: "c" + (j % 6) },
        s("title", {}, `${o}: ${v}`)));
    });
  }
  $("#health-chart").replaceChildren(s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": `knocks per minute since ${d.knocks.since}: ` + outcomes.map((o) => `${o} ${d.knocks.totals[o]}`).join(", ") || "none" },
    s("line", { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: "axis" }), ...bars));
  $("#health-legend").replaceChildren(...(outcomes.length ? outcomes.map((o, j) => h("li", {}, h("span", { class: "swatch c" + (j % 6) }), `${o}: ${d.knocks.totals[o]}`)) : [h("li", { class: "muted" }, "no knock in this period")]));
}

// ---- views ----------------------------------------------------------------

let healthTimer = null;

function route() {
  const view = (location.hash.replace(/^#\//, "") || "rooms").split("?")[0];
  const known = ["rooms", "bans", "meetings", "health"];
  const v = known.includes(view) ? view : "rooms";
  for (const k of known) {
    $("#view-" + k).hidden = k !== v;
    const a = $("#nav-" + k);
    if (k === v) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  clearInterval(healthTimer);
  if (v === "bans") loadBans();
  if (v === "meetings") loadMeetings();
  if (v === "health") { loadHealth(); healthTimer = setInterval(loadHealth, 10000); }
}

function debounce(f, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => f(...a), ms); };
}

async function start() {
  try {
    session = await api("session");
  } catch { return; }
  $("#tenant").textContent = session.tenant;
  $("#signout-csrf").value = session.csrf;
  document.body.dataset.tenant = session.tenant;
  if (!session.features.meetings) $("#nav-meetings").hidden = true;
  $("#rooms-q").addEventListener("input", debounce((e) => { rooms.q = e.target.value; rooms.page = 1; openStream(); }, 250));
  $("#bans-q").addEventListener("input", debounce((e) => { bans.q = e.target.value; loadBans(); }, 250));
  $("#ban-form").addEventListener("submit", banFromForm);
  $("#meeting-form").addEventListener("submit", createMeeting);
  const end = new Date(Date.now() + 3600e3);
  end.setSeconds(0, 0);
  $("#meeting-end").value = new Date(end.getTime() - end.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
  window.addEventListener("hashchange", route);
  route();
  openStream();
  document.body.dataset.ready = "true";
}

start();
