-- gavel for docker-jitsi-meet: copy to ${CONFIG}/prosody/config/conf.d/gavel.cfg.lua
-- (~/.jitsi-meet-cfg/prosody/config/conf.d/). The prosody container copies
-- /config into its run directory at every start and its prosody.cfg.lua
-- includes conf.d/*.cfg.lua; this file comes before jitsi-meet.cfg.lua and
-- starts in the global section. Names are docker-jitsi-meet's defaults
-- (XMPP_DOMAIN=meet.jitsi, XMPP_MUC_DOMAIN=muc.meet.jitsi,
-- XMPP_AUTH_DOMAIN=auth.meet.jitsi): change them with yours.
-- docs/docker-jitsi-meet.md explains each line.

-- prosody.cfg.lua sets component_ports = { } (Jicofo no longer connects as
-- a component); gavel does. Listen on the container's network: the port
-- is reachable from the other containers of the compose network, and is
-- not published to the host.
component_ports = { 5347 }
component_interfaces = { "*" }

-- The conference MUC (XMPP_MUC_DOMAIN): gavel is an admin there, as
-- Jicofo's focus user is (globally, in jitsi-meet.cfg.lua).
Component "muc.meet.jitsi" "muc"
    admins = { "focus@auth.meet.jitsi", "gavel.meet.jitsi" }
    -- Prosody 13 makes component admins owners of rooms they did not
    -- create only with this; 0.12 always does and ignores it. gavel checks
    -- it at every connection and says so when it is missing.
    component_admins_as_room_owners = true

-- gavel itself: the same secret as GAVEL_COMPONENT_SECRET in gavel's
-- environment.
Component "gavel.meet.jitsi"
    component_secret = "CHANGE ME: openssl rand -hex 32"
