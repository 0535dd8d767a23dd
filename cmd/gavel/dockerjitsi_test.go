package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/auth"
	"github.com/gavelxmpp/gavel/internal/loopback"
	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// The Prosody config docker-jitsi-meet renders (prosody/rootfs/defaults:
// prosody.cfg.lua and conf.d/jitsi-meet.cfg.lua, with its default names,
// ENABLE_AUTH=1 and AUTH_TYPE=internal), reduced to what concerns gavel and
// moved to loopback ports: the global component_ports = { }, the Include
// of conf.d/*.cfg.lua at the end, the global admins, plugin_paths, and the
// MUC component as the template writes it, with XMPP_MUC_MODULES rendered
// into its modules_enabled ({{MUC_MODULES}}). Jitsi's own modules
// (muc_hide_all, muc_meeting_id, muc_domain_mapper, token_verification)
// are not in Debian's Prosody and are left out; TLS too.
const djmProsody = `-- prosody.cfg.lua, as docker-jitsi-meet renders it (reduced)
{{ROOT}}
admins = { }
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "posix"; }
modules_disabled = { "s2s"; "tls"; "http"; "offline"; "limits" }
component_ports = { }
https_ports = { }
http_ports = { }
allow_registration = false;
pidfile = "{{DIR}}/prosody.pid";
c2s_require_encryption = false;
c2s_ports = { {{C2S}} }
c2s_interfaces = { "127.0.0.1" }
authentication = "internal_hashed"
allow_unencrypted_plain_auth = true -- the test's clients log in without TLS
log = { { levels = { min = "warn" }, to = "file", filename = "{{DIR}}/prosody.log" } }
network_settings = { tcp_backlog = 511; nagle = false }
data_path = "{{DIR}}/data"
Include "conf.d/*.cfg.lua"
`

// djmJitsiMeet is conf.d/jitsi-meet.cfg.lua. {{CUSTOM}} stands for
// /prosody-plugins-custom, the container's mount of
// ${CONFIG}/prosody/prosody-plugins-custom.
const djmJitsiMeet = `-- conf.d/jitsi-meet.cfg.lua, as docker-jitsi-meet renders it (reduced)
admins = {
    "focus@auth.meet.jitsi",
    "jvb@auth.meet.jitsi"
}
unlimited_jids = { "focus@auth.meet.jitsi", "jvb@auth.meet.jitsi" }
plugin_paths = { "/prosody-plugins/", "{{CUSTOM}}" }
http_default_host = "meet.jitsi"
consider_bosh_secure = true;

VirtualHost "meet.jitsi"
    authentication = "internal_hashed"
    modules_enabled = { "ping"; }
    c2s_require_encryption = false

VirtualHost "auth.meet.jitsi"
    authentication = "internal_hashed"

Component "internal-muc.meet.jitsi" "muc"
    storage = "memory"
    modules_enabled = { "ping"; }
    restrict_room_creation = true
    muc_room_locking = false
    muc_room_default_public_jids = true

Component "muc.meet.jitsi" "muc"
    restrict_room_creation = true
    storage = "memory"
    modules_enabled = {
        {{MUC_MODULES}}
    }
    muc_room_cache_size = 1000
    muc_room_locking = false
    muc_room_default_public_jids = true

Component "focus.meet.jitsi" "client_proxy"
    target_address = "focus@auth.meet.jitsi"
`

// djmModules renders a comma-separated module list (.env's
// XMPP_MUC_MODULES) as the template does: each name quoted, followed by
// a semicolon, empty items dropped.
func djmModules(env string) string {
	var b strings.Builder
	for _, m := range strings.Split(env, ",") {
		if m = strings.TrimSpace(m); m != "" {
			fmt.Fprintf(&b, "%q;\n        ", m)
		}
	}
	return strings.TrimSpace(b.String())
}

// A deployment as docs/docker-jitsi-meet.md describes it.
type djmMode struct {
	name string
	// mucModules is XMPP_MUC_MODULES in .env; the module files are copied
	// into prosody-plugins-custom.
	mucModules string
	plugins    []string
	// yml turns the shipped gavel.yml into the mode's.
	yml func(shipped string) (string, error)
	// bridge: gavel governs the room from the module's reports, without
	// being in it.
	bridge bool
}

var djmModes = []djmMode{
	{
		// The recommended setup: the shipped files, the module copied to
		// prosody-plugins-custom and XMPP_MUC_MODULES=gavel_bridge.
		name: "bridge", mucModules: "gavel_bridge", plugins: []string{"mod_gavel_bridge.lua"},
		yml:    func(s string) (string, error) { return s, nil },
		bridge: true,
	},
	{
		// The fallback: no module, and gavel.yml edited as its comment
		// says (bridge: true replaced with discover_rooms: true).
		name: "polling",
		yml: func(s string) (string, error) {
			out := strings.Replace(s, "\n    bridge: true\n", "\n    discover_rooms: true\n", 1)
			if out == s {
				return "", fmt.Errorf("packaging/docker-jitsi-meet/gavel.yml has no line %q to replace", "    bridge: true")
			}
			return out, nil
		},
	},
}

// TestDockerJitsiMeet starts Prosody (0.12, and 13 when installed) with
// docker-jitsi-meet's config plus packaging/docker-jitsi-meet/gavel.cfg.lua
// as shipped, and the gavel binary with packaging/docker-jitsi-meet/gavel.yml
// (only addresses, secrets and the data directory changed), in the two
// ways docs/docker-jitsi-meet.md describes: with mod_gavel_bridge loaded
// through XMPP_MUC_MODULES (recommended) and in polling mode (the
// fallback). Jicofo's focus creates a room on muc.meet.jitsi; gavel
// connects, its server check passes, /readyz is 200, a knock with a
// moderator token makes its holder owner and moderator in its first
// presence, a tokenless user joining without a knock is a participant, and
// a kick through the HTTP API removes it. With the bridge, gavel decides
// that join, never asks about the focus and is never an occupant of the
// room; in polling mode it enters the room.
func TestDockerJitsiMeet(t *testing.T) {
	bin := gavelBinary(t)
	luaCfg, err := os.ReadFile("../../packaging/docker-jitsi-meet/gavel.cfg.lua")
	if err != nil {
		t.Fatal(err)
	}
	ymlCfg, err := os.ReadFile("../../packaging/docker-jitsi-meet/gavel.yml")
	if err != nil {
		t.Fatal(err)
	}
	type server struct {
		name string
		bin  func() (string, error)
	}
	for _, s := range []server{{"prosody-0.12", prosodytest.Binary}, {"prosody-13", prosodytest.Prosody13}} {
		t.Run(s.name, func(t *testing.T) {
			prosody, err := s.bin()
			if err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatal(err)
				}
				t.Skip(err)
			}
			for _, mode := range djmModes {
				t.Run(mode.name, func(t *testing.T) {
					yml, err := mode.yml(string(ymlCfg))
					if err != nil {
						t.Fatal(err)
					}
					testDockerJitsiMeet(t, bin, prosody, mode, string(luaCfg), yml)
				})
			}
		})
	}
}

func testDockerJitsiMeet(t *testing.T, bin, prosody string, mode djmMode, luaCfg, ymlCfg string) {
	dir := t.TempDir()
	ports, err := loopback.Ports(3)
	if err != nil {
		t.Fatal(err)
	}
	c2s, comp, httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	const componentSecret = "docker-jitsi-meet-component-secret"
	const appSecret = "docker-jitsi-meet-app-secret-0123456789"
	const adminSecret = "docker-jitsi-meet-admin-secret-0123"
	root := ""
	if os.Geteuid() == 0 {
		root = "run_as_root = true"
	}
	main := strings.NewReplacer("{{ROOT}}", root, "{{DIR}}", dir, "{{C2S}}", fmt.Sprint(ports[0])).Replace(djmProsody)
	custom := filepath.Join(dir, "prosody-plugins-custom")
	jitsiMeet := strings.NewReplacer("{{CUSTOM}}", custom, "{{MUC_MODULES}}", djmModules(mode.mucModules)).Replace(djmJitsiMeet)
	// gavel.cfg.lua as shipped, but on a free loopback port with the
	// test's secret.
	gavelLua := strings.NewReplacer(
		"component_ports = { 5347 }", fmt.Sprintf("component_ports = { %d }", ports[1]),
		`component_interfaces = { "*" }`, `component_interfaces = { "127.0.0.1" }`,
		"CHANGE ME: openssl rand -hex 32", componentSecret,
	).Replace(luaCfg)
	if gavelLua == luaCfg || !strings.Contains(gavelLua, componentSecret) || !strings.Contains(gavelLua, fmt.Sprint(ports[1])) {
		t.Fatal("packaging/docker-jitsi-meet/gavel.cfg.lua no longer has the lines the test replaces")
	}
	files := map[string]string{
		"prosody.cfg.lua":           main,
		"conf.d/jitsi-meet.cfg.lua": jitsiMeet,
		"conf.d/gavel.cfg.lua":      gavelLua,
	}
	// The operator's copy of the module into
	// ${CONFIG}/prosody/prosody-plugins-custom.
	for _, name := range mode.plugins {
		b, err := os.ReadFile(filepath.Join("../../prosody-modules", name))
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Join("prosody-plugins-custom", name)] = string(b)
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "prosody.cfg.lua")
	ctl := filepath.Join(filepath.Dir(prosody), "prosodyctl")
	for _, u := range [][2]string{{"alice", "meet.jitsi"}, {"bob", "meet.jitsi"}, {"focus", "auth.meet.jitsi"}} {
		if out, err := exec.Command(ctl, "--config", cfgPath, "register", u[0], u[1], "pw").CombinedOutput(); err != nil {
			t.Fatalf("prosodyctl register: %v: %s", err, out)
		}
	}
	p := exec.Command(prosody, "--config", cfgPath, "-F")
	plog, _ := os.Create(filepath.Join(dir, "console.log"))
	defer plog.Close()
	p.Stdout, p.Stderr = plog, plog
	p.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Process.Kill(); _ = p.Wait() }()
	dumpLogs := func() {
		for _, f := range []string{"console.log", "prosody.log"} {
			b, _ := os.ReadFile(filepath.Join(dir, f))
			t.Logf("%s:\n%s", f, b)
		}
	}
	for start := time.Now(); !(loopback.Listening(c2s) && loopback.Listening(comp)); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 15*time.Second {
			dumpLogs()
			t.Fatal("Prosody did not listen within 15s")
		}
	}

	yml := strings.NewReplacer(
		"address: xmpp.meet.jitsi:5347", "address: "+comp,
		"data_dir: /var/lib/gavel", "data_dir: "+t.TempDir(),
		"listen: 0.0.0.0:8080", "listen: "+httpAddr,
	).Replace(ymlCfg) + "log:\n  level: debug\n"
	if strings.Contains(yml, "address: xmpp.meet.jitsi") || strings.Contains(yml, "data_dir: /var/lib/gavel") || strings.Contains(yml, "0.0.0.0:8080") {
		t.Fatal("packaging/docker-jitsi-meet/gavel.yml no longer has the lines the test replaces")
	}
	cfg := writeConfig(t, yml)
	cmd := exec.Command(bin, "-config", cfg)
	cmd.Env = append(os.Environ(), "GAVEL_COMPONENT_SECRET="+componentSecret, "GAVEL_ADMIN_SECRET="+adminSecret, "JWT_APP_SECRET="+appSecret)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	logs := readLogs(out)
	logs.wait(t, 0, "server check: gavel is owner in rooms it did not create")
	resp, err := http.Get("http://" + httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz: %d", resp.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	login := func(user, host string) *xclient.Client {
		cl, err := xclient.Login(ctx, c2s, user, host, "pw")
		if err != nil {
			dumpLogs()
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	room := "standup@muc.meet.jitsi"

	// Jicofo's focus creates the room: the MUC restricts room creation to
	// admins, and muc_meeting_id holds clients until the focus is in.
	focus := login("focus", "auth.meet.jitsi")
	if _, err := focus.Join(ctx, room, "focus"); err != nil {
		dumpLogs()
		t.Fatalf("focus: %v", err)
	}

	// A Jitsi token for the MUC muc.meet.jitsi names the tenant meet.jitsi
	// (muc_domain_prefix: muc).
	alice := login("alice", "meet.jitsi")
	tok, err := auth.Mint(auth.MintRequest{Secret: []byte(appSecret), Issuer: "my_jitsi_app_id", Audience: []string{"jitsi"}, Subject: "meet.jitsi", Room: "standup", UserID: "alice-id", Moderator: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.Knock(ctx, "gavel.meet.jitsi", room, tok)
	if err != nil {
		t.Fatalf("knock: %v", err)
	}
	if res.Role != "moderator" {
		t.Errorf("knock: role %q, want moderator", res.Role)
	}
	self, err := alice.Join(ctx, room, "alice")
	if err != nil {
		dumpLogs()
		t.Fatal(err)
	}
	if self.Affiliation != "owner" || self.Role != "moderator" {
		t.Errorf("alice joined as %s/%s, want owner/moderator", self.Affiliation, self.Role)
	}

	// bob never knocks and his session has no token (AUTH_TYPE=internal):
	// a guest, and guests: member makes him a participant.
	bob := login("bob", "meet.jitsi")
	self, err = bob.Join(ctx, room, "bob")
	if err != nil {
		dumpLogs()
		t.Fatalf("bob: %v", err)
	}
	if self.Affiliation != "none" || self.Role != "participant" {
		t.Errorf("bob joined as %s/%s, want none/participant", self.Affiliation, self.Role)
	}
	if mode.bridge {
		// The bridge asked gavel before bob's join (gavel logs its answer
		// just after sending it); it never asks about the focus
		// (gavel_bridge_bypass).
		var granted map[string]any
		for deadline := time.Now().Add(10 * time.Second); granted == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, m := range logs.since(0) {
				if from, _ := m["from"].(string); m["msg"] == "knock granted" && strings.HasPrefix(from, "bob@meet.jitsi/") {
					granted = m
				}
			}
		}
		if granted == nil || granted["bridge"] != true {
			t.Errorf("gavel's grant of bob's join: %v, want one asked by the bridge", granted)
		}
		for _, m := range logs.since(0) {
			// "knock granted", "knock refused", "knock held by the lock":
			// gavel's answers to knocks and bridge joins.
			msg, _ := m["msg"].(string)
			if from, _ := m["from"].(string); strings.HasPrefix(msg, "knock ") && strings.HasPrefix(from, "focus@") {
				t.Errorf("gavel was asked about Jicofo's focus: %v", m)
			}
		}
	}

	// gavel governs the room: a kick through the HTTP API removes bob.
	// With the bridge gavel is not a moderator occupant: the module lets
	// its kick through. The admin API's tenant of a room without [tenant]
	// is its MUC domain without a leading "conference." (docs/api.md):
	// muc.meet.jitsi here.
	admin, err := auth.Mint(auth.MintRequest{Secret: []byte(adminSecret), Subject: "muc.meet.jitsi", Issuer: "x", Audience: []string{"x"}, TTL: time.Hour, Extra: map[string]any{"admin": true}})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"action":"KICK_PARTICIPANT","payload":{"conferenceFullName":"` + room + `","participantId":"bob"}}`
	req, _ := http.NewRequest("POST", "http://"+httpAddr+"/conference-commands/v1/meeting", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e map[string]any
		_ = json.Unmarshal(b, &e)
		t.Fatalf("kick: %d %v", resp.StatusCode, e)
	}
	if _, err := bob.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/bob") && p.Type == "unavailable" && p.Self()
	}); err != nil {
		t.Fatalf("bob was not kicked: %v", err)
	}
	if _, err := alice.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/bob") && p.Type == "unavailable"
	}); err != nil {
		t.Fatalf("alice did not see bob leave: %v", err)
	}

	// alice, a moderator since before bob joined, saw every occupant's
	// presence: gavel's (nick "gavel...") only in polling mode.
	var gavelSeen []xclient.Presence
	for _, p := range alice.Presences() {
		if nick, ok := strings.CutPrefix(strings.ToLower(p.From), room+"/"); ok && strings.HasPrefix(nick, "gavel") {
			gavelSeen = append(gavelSeen, p)
		}
	}
	if mode.bridge && len(gavelSeen) > 0 {
		t.Errorf("gavel is an occupant of %s: %+v", room, gavelSeen)
	}
	if !mode.bridge && len(gavelSeen) == 0 {
		t.Errorf("polling mode: alice never saw gavel in %s", room)
	}
	// The module loaded on the MUC and found its options there: it logged
	// no warning or error.
	plogBody, _ := os.ReadFile(filepath.Join(dir, "prosody.log"))
	for _, line := range strings.Split(string(plogBody), "\n") {
		if strings.Contains(line, "gavel_bridge") {
			t.Errorf("prosody.log: %s", line)
		}
	}
	for _, m := range logs.since(0) {
		if lvl, _ := m["level"].(string); lvl == "warn" || lvl == "error" {
			if msg, _ := m["msg"].(string); strings.Contains(msg, "server check") || mode.bridge && strings.Contains(msg, "bridge") {
				t.Errorf("logged %v", m)
			}
		}
	}
}
