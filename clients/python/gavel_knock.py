"""Knock on a room moderated by gavel before joining it, from slixmpp.

The token goes to gavel alone, in an IQ (urn:gavel:knock:0, see gavel's
docs/protocol.md), and the answer comes back as a typed result:

- ``Granted``: gavel set the affiliation; join now, the first presence
  already carries ``role``.
- ``RetryLater``: a refusal of type ``wait`` (``rate-limited``,
  ``token-key-unavailable``, ``room-unavailable``, ``shutting-down``),
  gavel offline (``not-connected``) or no answer in time (``timeout``):
  knock again later, unchanged.
- ``Refused``: every other refusal (``token-expired``, ``banned``, ...):
  the same token will not get in.

Usage in a bot or script::

    result = await knock(xmpp, "mod.example.com", "standup@conference.example.com", token)
    if isinstance(result, Granted):
        xmpp.plugin["xep_0045"].join_muc(result.room, "bot")
    elif isinstance(result, RetryLater):
        ...  # wait and knock again
    else:
        print(describe(result))   # "refused: token-expired"

Only slixmpp and the standard library are needed; the module is a single
file to copy or vendor.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Optional, Union

from slixmpp.exceptions import IqError, IqTimeout

__all__ = [
    "NS", "RETRY_REASONS", "Granted", "RetryLater", "Refused", "KnockResult",
    "knock", "granted", "refusal", "read_error", "describe",
]

#: The knock namespace, also gavel's disco#info feature.
NS = "urn:gavel:knock:0"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_PROSODY_COMPONENT = "xmpp:prosody.im/protocol/component"

#: The application conditions gavel sends with type "wait": retry later.
RETRY_REASONS = frozenset({"rate-limited", "token-key-unavailable", "room-unavailable", "shutting-down"})

#: Seconds a knock waits for gavel's answer.
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Granted:
    """gavel set the affiliation: join the room now."""

    room: str
    affiliation: str
    role: str
    reason: str
    expires: Optional[datetime.datetime]
    outcome: str = "granted"


@dataclass(frozen=True)
class RetryLater:
    """Knock again later, unchanged."""

    reason: str
    type: str
    condition: str
    text: str
    outcome: str = "retry"


@dataclass(frozen=True)
class Refused:
    """The knock was refused for good: reason says why."""

    reason: str
    type: str
    condition: str
    text: str
    outcome: str = "refused"


KnockResult = Union[Granted, RetryLater, Refused]


def granted(attrs: dict) -> Granted:
    """The result of a knock answered with type "result", from the
    attributes of the answer's <knock/> element."""
    expires = None
    if attrs.get("expires"):
        try:
            expires = datetime.datetime.fromisoformat(attrs["expires"].replace("Z", "+00:00"))
        except ValueError:
            expires = None
    return Granted(
        room=attrs.get("room", ""),
        affiliation=attrs.get("affiliation", ""),
        role=attrs.get("role", ""),
        reason=attrs.get("reason", ""),
        expires=expires,
    )


def refusal(type: str = "", condition: str = "", app: str = "", app_ns: str = "", text: str = "") -> Union[RetryLater, Refused]:
    """The result of a knock answered with type "error". Type "wait"
    (RFC 6120: retry after waiting) is RetryLater, every other Refused; the
    reason is gavel's application condition when there is one."""
    reason = condition or "undefined-condition"
    if app and app_ns == NS:
        reason = app
    elif app == "not-connected" and app_ns == NS_PROSODY_COMPONENT:
        reason = "not-connected"
    cls = RetryLater if type == "wait" else Refused
    return cls(reason=reason, type=type, condition=condition, text=text)


def read_error(error: Optional[ET.Element]) -> dict:
    """Reads an <error/> element into refusal()'s keyword arguments."""
    out = {"type": "", "condition": "", "app": "", "app_ns": "", "text": ""}
    if error is None:
        return out
    out["type"] = error.get("type", "")
    for child in error:
        ns, _, name = child.tag[1:].partition("}") if child.tag.startswith("{") else ("", "", child.tag)
        if ns == NS_STANZAS and name == "text":
            out["text"] = child.text or ""
        elif ns == NS_STANZAS:
            out["condition"] = name
        elif not out["app"]:
            out["app"], out["app_ns"] = name, ns
    return out


def describe(result: KnockResult) -> str:
    """One line for people: "granted: moderator (token-moderator)",
    "retry later: rate-limited", "refused: token-expired"."""
    if isinstance(result, Granted):
        return f"granted: {result.role} ({result.reason})"
    if isinstance(result, RetryLater):
        return f"retry later: {result.reason}"
    return f"refused: {result.reason}"


async def knock(xmpp, component: str, room: str, token: Optional[str] = None,
                timeout: float = DEFAULT_TIMEOUT) -> KnockResult:
    """Knocks on room through gavel at component from a connected slixmpp
    client (ClientXMPP) and returns a typed result. An empty or absent
    token knocks as a guest."""
    if not component:
        raise ValueError("gavel_knock: component (gavel's JID) is required")
    if room.count("@") != 1 or "/" in room:
        raise ValueError(f"gavel_knock: room must be a bare room JID, got {room!r}")
    iq = xmpp.make_iq_set(ito=component)
    el = ET.Element(f"{{{NS}}}knock", room=room)
    if token:
        ET.SubElement(el, f"{{{NS}}}token").text = token
    iq.append(el)
    try:
        reply = await iq.send(timeout=timeout)
    except IqError as e:
        return refusal(**read_error(e.iq.xml.find("{jabber:client}error")))
    except IqTimeout:
        return RetryLater(reason="timeout", type="", condition="", text="no answer from gavel in time")
    result = reply.xml.find(f"{{{NS}}}knock")
    return granted(dict(result.attrib) if result is not None else {})
