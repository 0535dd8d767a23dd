"""Tests of gavel_knock: the error mapping on golden stanzas, and the knock
from slixmpp against a real Prosody and gavel. The Go test
clients/python_test.go (TestPython) starts both, mints the tokens with
`gavel token mint` and passes them in GAVEL_KNOCK_FIXTURE; without it the
live tests are skipped: run `go test ./clients -run TestPython`.
"""

import asyncio
import datetime
import json
import logging
import os
import unittest
import xml.etree.ElementTree as ET

import gavel_knock as gk

FIXTURE = json.loads(os.environ["GAVEL_KNOCK_FIXTURE"]) if os.environ.get("GAVEL_KNOCK_FIXTURE") else None
TIMEOUT = 10

# Every row of docs/protocol.md section 5: condition, type, defined condition, outcome.
DOCUMENTED = [
    ("bad-room", "modify", "bad-request", "refused"),
    ("not-governed", "cancel", "item-not-found", "refused"),
    ("rate-limited", "wait", "resource-constraint", "retry"),
    ("token-required", "auth", "not-authorized", "refused"),
    ("banned", "auth", "forbidden", "refused"),
    ("token-expired", "auth", "not-authorized", "refused"),
    ("token-not-yet-valid", "auth", "not-authorized", "refused"),
    ("token-issued-in-future", "auth", "not-authorized", "refused"),
    ("token-bad-signature", "auth", "not-authorized", "refused"),
    ("token-unknown-key", "auth", "not-authorized", "refused"),
    ("token-algorithm-not-allowed", "auth", "not-authorized", "refused"),
    ("token-malformed", "auth", "not-authorized", "refused"),
    ("token-wrong-type", "auth", "not-authorized", "refused"),
    ("token-too-large", "auth", "not-authorized", "refused"),
    ("token-missing-claim", "auth", "not-authorized", "refused"),
    ("token-wrong-issuer", "auth", "not-authorized", "refused"),
    ("token-wrong-audience", "auth", "not-authorized", "refused"),
    ("token-wrong-room", "auth", "forbidden", "refused"),
    ("token-wrong-tenant", "auth", "forbidden", "refused"),
    ("token-key-unavailable", "wait", "service-unavailable", "retry"),
    ("room-unavailable", "wait", "service-unavailable", "retry"),
    ("shutting-down", "wait", "service-unavailable", "retry"),
]


def error(type_, cond, app, app_ns=gk.NS, text="why"):
    s = (f"<error xmlns='jabber:client' type='{type_}'><{cond} xmlns='{gk.NS_STANZAS}'/>"
         f"<text xmlns='{gk.NS_STANZAS}'>{text}</text>")
    if app:
        s += f"<{app} xmlns='{app_ns}'/>"
    return ET.fromstring(s + "</error>")


class Mapping(unittest.TestCase):
    def test_documented_refusals(self):
        for app, type_, cond, outcome in DOCUMENTED:
            with self.subTest(app):
                r = gk.refusal(**gk.read_error(error(type_, cond, app)))
                self.assertEqual((r.outcome, r.reason, r.type, r.condition, r.text), (outcome, app, type_, cond, "why"))
                self.assertIsInstance(r, gk.RetryLater if outcome == "retry" else gk.Refused)

    def test_retry_reasons_are_the_wait_conditions(self):
        self.assertEqual(gk.RETRY_REASONS, {d[0] for d in DOCUMENTED if d[3] == "retry"})

    def test_gavel_offline_means_retry(self):
        r = gk.refusal(**gk.read_error(error("wait", "remote-server-timeout", "not-connected", gk.NS_PROSODY_COMPONENT)))
        self.assertEqual((r.outcome, r.reason), ("retry", "not-connected"))

    def test_other_conditions_are_named_by_the_defined_condition(self):
        r = gk.refusal(**gk.read_error(error("cancel", "service-unavailable", "")))
        self.assertEqual((r.outcome, r.reason), ("refused", "service-unavailable"))
        self.assertEqual(gk.refusal(**gk.read_error(error("auth", "forbidden", "other", "urn:example"))).reason, "forbidden")

    def test_granted(self):
        g = gk.granted({"room": "r@muc", "affiliation": "owner", "role": "moderator",
                        "reason": "token-moderator", "expires": "2026-11-24T11:00:00Z"})
        self.assertEqual(g.expires, datetime.datetime(2026, 11, 24, 11, 0, tzinfo=datetime.timezone.utc))
        self.assertEqual(gk.describe(g), "granted: moderator (token-moderator)")
        self.assertIsNone(gk.granted({"expires": "never"}).expires)
        self.assertEqual(gk.describe(gk.refusal("auth", "not-authorized", "token-expired", gk.NS)), "refused: token-expired")
        self.assertEqual(gk.describe(gk.refusal("wait", "resource-constraint", "rate-limited", gk.NS)), "retry later: rate-limited")


@unittest.skipUnless(FIXTURE, "GAVEL_KNOCK_FIXTURE is not set: run go test ./clients -run TestPython")
class Live(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.f = FIXTURE["python"]
        self.sessions = []

    async def asyncTearDown(self):
        for x in self.sessions:
            x.disconnect()
            await asyncio.wait_for(x.disconnected, TIMEOUT)

    async def login(self, user):
        import slixmpp
        x = slixmpp.ClientXMPP(f"{user}@{FIXTURE['domain']}/test", FIXTURE["password"])
        started = asyncio.get_running_loop().create_future()
        x.add_event_handler("session_start", lambda _: started.done() or started.set_result(None))
        x.add_event_handler("failed_auth", lambda _: started.done() or started.set_exception(RuntimeError("auth failed")))
        host, port = FIXTURE["tcp"].split(":")
        x.connect((host, int(port)), force_starttls=False, disable_starttls=True)
        self.sessions.append(x)
        await asyncio.wait_for(started, TIMEOUT)
        return x

    async def join(self, x, room, nick):
        """Joins room and returns the role of the first self-presence."""
        me = f"{room}/{nick}".lower()
        first = asyncio.get_running_loop().create_future()

        def on_presence(p):
            mu = p.xml.find("{http://jabber.org/protocol/muc#user}x")
            if str(p["from"]).lower() != me or mu is None or first.done():
                return
            if any(s.get("code") == "110" for s in mu.findall("{http://jabber.org/protocol/muc#user}status")):
                first.set_result(mu.find("{http://jabber.org/protocol/muc#user}item").get("role"))

        x.add_event_handler("presence", on_presence)
        p = x.make_presence(pto=f"{room}/{nick}")
        p.append(ET.Element("{http://jabber.org/protocol/muc}x"))
        p.send()
        try:
            return await asyncio.wait_for(first, TIMEOUT)
        finally:
            x.del_event_handler("presence", on_presence)

    async def test_moderator(self):
        x = await self.login(self.f["users"][0])
        r = await gk.knock(x, FIXTURE["component"], self.f["room"], self.f["tokens"]["moderator"])
        self.assertIsInstance(r, gk.Granted, r)
        self.assertEqual((r.affiliation, r.role, r.reason, r.room), ("owner", "moderator", "token-moderator", self.f["room"].lower()))
        self.assertGreater(r.expires, datetime.datetime.now(datetime.timezone.utc))
        self.assertEqual(await self.join(x, self.f["room"], "alice"), "moderator")

    async def test_participant(self):
        x = await self.login(self.f["users"][1])
        r = await gk.knock(x, FIXTURE["component"], self.f["room"], self.f["tokens"]["participant"])
        self.assertEqual((r.outcome, r.role, r.reason), ("granted", "participant", "token-participant"))
        self.assertEqual(await self.join(x, self.f["room"], "bob"), "participant")

    async def test_refusals(self):
        x = await self.login(self.f["users"][2])
        for token, reason, type_, cond in [
            (self.f["tokens"]["expired"], "token-expired", "auth", "not-authorized"),
            (self.f["tokens"]["wrongRoom"], "token-wrong-room", "auth", "forbidden"),
            (None, "token-required", "auth", "not-authorized"),
            ("not.a.jwt", "token-malformed", "auth", "not-authorized"),
        ]:
            with self.subTest(reason):
                r = await gk.knock(x, FIXTURE["component"], self.f["room"], token)
                self.assertIsInstance(r, gk.Refused)
                self.assertEqual((r.reason, r.type, r.condition), (reason, type_, cond))
                self.assertTrue(r.text)

    async def test_rate_limited_means_retry(self):
        x = await self.login(self.f["users"][3])
        # One knock per JID and minute after a small burst: knock until told to wait.
        for _ in range(20):
            r = await gk.knock(x, FIXTURE["component"], self.f["slowRoom"])
            if not isinstance(r, gk.Granted):
                break
        self.assertIsInstance(r, gk.RetryLater, r)
        self.assertEqual((r.reason, r.type, r.condition), ("rate-limited", "wait", "resource-constraint"))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    unittest.main()
