-- gavel for docker-jitsi-meet: copy to ${CONFIG}/prosody/config/conf.d/gavel.cfg.lua
-- (~/.jitsi-meet-cfg/prosody/config/conf.d/). The prosody container copies
-- /config into its run directory at every start and its prosody.cfg.lua
-- includes conf.d/*.cfg.lua; this file comes before jitsi-meet.cfg.lua and
-- starts in the global section. Names are docker-jitsi-meet's defaults
-- (XMPP_DOMAIN=meet.jitsi, XMPP_MUC_DOMAIN=muc.meet.jitsi,
-- XMPP_AUTH_DOMAIN=auth.meet.jitsi, XMPP_HIDDEN_DOMAIN=hidden.meet.jitsi):
-- change them with yours.
-- docs/docker-jitsi-meet.md explains each line.
--
-- The bridge (recommended) also needs two steps outside this file:
--   1. copy prosody-modules/mod_gavel_bridge.lua to
--      ${CONFIG}/prosody/prosody-plugins-custom/ (on plugin_paths);
--   2. add gavel_bridge to XMPP_MUC_MODULES in .env
--      (XMPP_MUC_MODULES=gavel_bridge): jitsi-meet.cfg.lua sets the MUC's
--      modules_enabled from it, after this file, so a module listed here
--      would be overwritten.
-- Without them (polling mode, the fallback) the gavel_bridge_* options
-- below are read by nobody and do no harm.

-- prosody.cfg.lua sets component_ports = { } (Jicofo no longer connects as
-- a component); gavel does. Listen on the container's network: the port
-- is reachable from the other containers of the compose network, and is
-- not published to the host.
component_ports = { 5347 }
component_interfaces = { "*" }

-- The conference MUC (XMPP_MUC_DOMAIN): gavel is an admin there, as
-- Jicofo's focus user is (globally, in jitsi-meet.cfg.lua). Options set
-- here stay: jitsi-meet.cfg.lua's block for the same component sets
-- others (modules_enabled, muc_room_locking, ...), not these.
Component "muc.meet.jitsi" "muc"
    admins = { "focus@auth.meet.jitsi", "gavel.meet.jitsi" }
    -- Prosody 13 makes component admins owners of rooms they did not
    -- create only with this; 0.12 always does and ignores it. gavel checks
    -- it at every connection and says so when it is missing.
    component_admins_as_room_owners = true

    -- mod_gavel_bridge: asks gavel (this component) before each join.
    gavel_bridge_component = "gavel.meet.jitsi"
    -- Never asked: Jicofo's focus (it creates the rooms; a gavel outage
    -- must not stop it), and Jibri's and Jigasi's transcriber accounts
    -- on the hidden domain (XMPP_HIDDEN_DOMAIN; XMPP_RECORDER_DOMAIN in
    -- older versions, recorder.meet.jitsi).
    gavel_bridge_bypass = { "focus@auth.meet.jitsi", "hidden.meet.jitsi" }
    -- When gavel does not answer within 2 s or is not connected, joins
    -- are refused (wait/service-unavailable). "open" lets them in with
    -- Prosody's defaults, ungoverned.
    gavel_bridge_fail = "closed"

-- gavel itself: the same secret as GAVEL_COMPONENT_SECRET in gavel's
-- environment.
Component "gavel.meet.jitsi"
    component_secret = "CHANGE ME: openssl rand -hex 32"
