package main

import (
	"context"
	"fmt"
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
// of conf.d/*.cfg.lua at the end, the global admins, and the MUC
// component as the template writes it. Jitsi's own modules
// (muc_meeting_id, token_verification) are not in Debian's Prosody and are
// left out; TLS too.
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

const djmJitsiMeet = `-- conf.d/jitsi-meet.cfg.lua, as docker-jitsi-meet renders it (reduced)
admins = {
    "focus@auth.meet.jitsi",
    "jvb@auth.meet.jitsi"
}
unlimited_jids = { "focus@auth.meet.jitsi", "jvb@auth.meet.jitsi" }
plugin_paths = { "/prosody-plugins/", "/prosody-plugins-custom" }
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
    storage = "memory"
    modules_enabled = { }
    muc_room_cache_size = 1000
    muc_room_locking = false
    muc_room_default_public_jids = true

Component "focus.meet.jitsi" "client_proxy"
    target_address = "focus@auth.meet.jitsi"
`

// TestDockerJitsiMeet starts Prosody (0.12, and 13 when installed) with
// docker-jitsi-meet's config plus packaging/docker-jitsi-meet/gavel.cfg.lua
// as shipped, and the gavel binary with packaging/docker-jitsi-meet/gavel.yml
// (only addresses, secrets and the data directory changed): gavel connects,
// the server check finds it owner in rooms it did not create, /readyz is
// 200, and a knock with a moderator token makes its holder moderator of a
// room on muc.meet.jitsi.
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
			testDockerJitsiMeet(t, bin, prosody, string(luaCfg), string(ymlCfg))
		})
	}
}

func testDockerJitsiMeet(t *testing.T, bin, prosody, luaCfg, ymlCfg string) {
	dir := t.TempDir()
	ports, err := loopback.Ports(3)
	if err != nil {
		t.Fatal(err)
	}
	c2s, comp, httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	const componentSecret = "docker-jitsi-meet-component-secret"
	const appSecret = "docker-jitsi-meet-app-secret-0123456789"
	root := ""
	if os.Geteuid() == 0 {
		root = "run_as_root = true"
	}
	main := strings.NewReplacer("{{ROOT}}", root, "{{DIR}}", dir, "{{C2S}}", fmt.Sprint(ports[0])).Replace(djmProsody)
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
	for name, body := range map[string]string{
		"prosody.cfg.lua":           main,
		"conf.d/jitsi-meet.cfg.lua": djmJitsiMeet,
		"conf.d/gavel.cfg.lua":      gavelLua,
	} {
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
	for _, u := range []string{"alice", "bob"} {
		if out, err := exec.Command(ctl, "--config", cfgPath, "register", u, "meet.jitsi", "pw").CombinedOutput(); err != nil {
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
	cmd.Env = append(os.Environ(), "GAVEL_COMPONENT_SECRET="+componentSecret, "GAVEL_ADMIN_SECRET=docker-jitsi-meet-admin-secret-0123", "JWT_APP_SECRET="+appSecret)
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
	cl, err := xclient.Login(ctx, c2s, "alice", "meet.jitsi", "pw")
	if err != nil {
		dumpLogs()
		t.Fatal(err)
	}
	defer cl.Close()
	// Jitsi's token for the MUC muc.meet.jitsi names the tenant meet.jitsi
	// (muc_domain_prefix: muc).
	tok, err := auth.Mint(auth.MintRequest{Secret: []byte(appSecret), Issuer: "my_jitsi_app_id", Audience: []string{"jitsi"}, Subject: "meet.jitsi", Room: "standup", UserID: "alice-id", Moderator: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	room := "standup@muc.meet.jitsi"
	res, err := cl.Knock(ctx, "gavel.meet.jitsi", room, tok)
	if err != nil {
		t.Fatalf("knock: %v", err)
	}
	if res.Role != "moderator" {
		t.Errorf("knock: role %q, want moderator", res.Role)
	}
	self, err := cl.Join(ctx, room, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if self.Affiliation != "owner" || self.Role != "moderator" {
		t.Errorf("alice joined as %s/%s, want owner/moderator", self.Affiliation, self.Role)
	}
	for _, m := range logs.since(0) {
		if lvl, _ := m["level"].(string); lvl == "warn" || lvl == "error" {
			if msg, _ := m["msg"].(string); strings.Contains(msg, "server check") {
				t.Errorf("logged %v", m)
			}
		}
	}
}
