// Command gavel-demo holds a meeting on a throwaway Prosody: it starts
// Prosody and the gavel binary on loopback, mints tokens with
// `gavel token mint`, lets users knock and join rooms under each policy,
// and prints who got which role and why. Ctrl-C stops everything.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

const (
	secret      = "demo-secret-0123456789abcdef"
	adminSecret = "demo-admin-secret-0123456789"
)

func main() { os.Exit(run()) }

func run() int {
	gavelBin := flag.String("gavel", "bin/gavel", "path to the gavel binary")
	dir := flag.String("dir", ".demo", "working directory (Prosody data, config, logs)")
	exit := flag.Bool("exit", false, "stop after the meeting instead of waiting for Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := demo(ctx, *gavelBin, *dir, *exit); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, gavelBin, dir string, exitAfter bool) error {
	dir, _ = filepath.Abs(dir)
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	step("starting a throwaway Prosody on loopback (%s)", dir)
	srv, err := prosodytest.Start(filepath.Join(dir, "prosody"), prosodytest.Options{RestrictRoomCreation: true, LogLevel: "info"})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("    c2s %s, component port %s, MUC %s\n", srv.C2SAddr, srv.ComponentAddr, prosodytest.MUC)

	httpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "gavel.yml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(configTemplate, srv.ComponentAddr, srv.Secret, httpAddr, adminSecret, filepath.Join(dir, "data"), secret)), 0o600); err != nil {
		return err
	}
	step("checking the config: %s -config %s -check", gavelBin, cfgPath)
	if out, err := exec.Command(gavelBin, "-config", cfgPath, "-check").CombinedOutput(); err != nil {
		return fmt.Errorf("config check: %v\n%s", err, out)
	}
	step("starting gavel (logs: %s)", filepath.Join(dir, "gavel.log"))
	logf, err := os.Create(filepath.Join(dir, "gavel.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	gavel := exec.Command(gavelBin, "-config", cfgPath)
	gavel.Stdout, gavel.Stderr = logf, logf
	gavel.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := gavel.Start(); err != nil {
		return err
	}
	gavelDone := make(chan error, 1)
	go func() { gavelDone <- gavel.Wait() }()
	defer func() {
		_ = gavel.Process.Signal(syscall.SIGTERM)
		select {
		case <-gavelDone:
		case <-time.After(10 * time.Second):
			_ = gavel.Process.Kill()
		}
		step("gavel and Prosody stopped")
	}()

	users := []string{"alice", "bob", "mallory", "carol", "dave", "erin", "frank", "gina", "hank", "ivy", "admin"}
	for _, u := range users {
		if err := srv.Register(u, prosodytest.Host, "pw"); err != nil {
			return err
		}
	}
	probe, err := xclient.Login(ctx, srv.C2SAddr, "admin", prosodytest.Host, "pw")
	if err != nil {
		return err
	}
	defer probe.Close()
	if err := waitConnected(ctx, probe, gavelDone); err != nil {
		return err
	}
	var ver struct {
		Query struct {
			Version string `xml:"version"`
		} `xml:"jabber:iq:version query"`
	}
	_ = probe.IQ(ctx, prosodytest.Component, "get", `<query xmlns='jabber:iq:version'/>`, &ver)
	step("gavel %s is connected to Prosody as component %s (health: http://%s/readyz)", ver.Query.Version, prosodytest.Component, httpAddr)

	m := &meeting{ctx: ctx, srv: srv, gavel: gavelBin}
	defer m.close()

	step("meeting 1: policy token, room standup@%s (guests denied)", prosodytest.MUC)
	standup := "standup@" + prosodytest.MUC
	m.join("alice", standup, m.mint("-sub", "example.test", "-room", "standup", "-user-id", "alice", "-name", "Alice", "-moderator"))
	m.join("bob", standup, m.mint("-sub", "example.test", "-room", "standup", "-user-id", "bob", "-name", "Bob"))
	m.join("guest", standup, "")
	m.join("mallory", standup, m.mint("-sub", "example.test", "-room", "standup", "-user-id", "mallory", "-ttl", "-10m"))
	m.join("mallory", standup, m.mint("-sub", "example.test", "-room", "retro", "-user-id", "mallory"))

	step("meeting 2: policy auto-owner (tenant acme), room [acme]planning@%s", prosodytest.MUC)
	planning := "[acme]planning@" + prosodytest.MUC
	m.join("carol", planning, m.mint("-sub", "acme", "-room", "planning", "-user-id", "carol"))
	m.join("dave", planning, m.mint("-sub", "acme", "-room", "planning", "-user-id", "dave"))
	m.leave("carol", planning)
	m.waitRole("dave", planning, "owner", "carol left: gavel handed ownership to the longest-present occupant")

	step("meeting 3: policy all-owners (tenant party), room [party]lounge@%s", prosodytest.MUC)
	lounge := "[party]lounge@" + prosodytest.MUC
	m.join("erin", lounge, m.mint("-sub", "party", "-room", "lounge", "-user-id", "erin"))
	m.join("frank", lounge, "")

	step("commands: make bob a moderator with SET_ROLE through the HTTP API")
	m.setRoleOverHTTP(httpAddr, standup, "bob", "moderator")

	step("commands: ban bob through the JaaS-shaped HTTP API")
	m.banOverHTTP(httpAddr, standup, "bob")

	step("meeting 4: made through the API (tenant town), with host, participant and viewer links")
	m.meetingOverHTTP(httpAddr)

	m.print()
	m.console(httpAddr, dir)
	if exitAfter {
		return m.err
	}
	fmt.Println("\ngavel keeps running: try `bin/gavel token verify -config " + cfgPath + " -room standup@" + prosodytest.MUC + " TOKEN`.\nCtrl-C stops gavel and Prosody.")
	select {
	case <-ctx.Done():
	case err := <-gavelDone:
		return fmt.Errorf("gavel exited: %v (see %s)", err, filepath.Join(dir, "gavel.log"))
	}
	return nil
}

// banOverHTTP bans user by user id with an admin token minted by gavel,
// and shows the user leaving the room.
func (m *meeting) banOverHTTP(httpAddr, room, user string) {
	admin := m.adminToken("example.test")
	if admin == "" {
		return
	}
	url := "http://" + httpAddr + "/jaccess/v1/access-management/example.test/ban/user/" + user
	fmt.Printf("    $ curl -X POST -H 'Authorization: Bearer $ADMIN' -d '{\"reason\":\"demo\"}' %s\n", url)
	req, _ := http.NewRequestWithContext(m.ctx, "POST", url, strings.NewReader(`{"reason":"demo"}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.fail(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("    %s %s", resp.Status, body)
	watcher := m.clients["alice"]
	if watcher == nil {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	defer cancel()
	if _, err := watcher.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/"+user) && p.Type == "unavailable"
	}); err != nil {
		m.fail(fmt.Errorf("%s was not removed: %v", user, err))
		return
	}
	m.rows = append(m.rows, []string{user, room, "", "banned", "user-ban", "removed from every room; a new JID or token for the same user id is refused"})
	m.join(user, room, m.mint("-sub", "example.test", "-room", "standup", "-user-id", user))
}

// setRoleOverHTTP gives present occupant nick a role with SET_ROLE, with
// an admin token minted by gavel, and shows the role change the room sees.
func (m *meeting) setRoleOverHTTP(httpAddr, room, nick, role string) {
	admin := m.adminToken("example.test")
	if admin == "" {
		return
	}
	url := "http://" + httpAddr + "/conference-commands/v1/meeting"
	body := fmt.Sprintf(`{"action":"SET_ROLE","payload":{"conferenceFullName":%q,"participantId":%q,"role":%q}}`, room, nick, role)
	fmt.Printf("    $ curl -X POST -H 'Authorization: Bearer $ADMIN' -d '%s' %s\n", body, url)
	req, _ := http.NewRequestWithContext(m.ctx, "POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.fail(err)
		return
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("    %s %s", resp.Status, out)
	if resp.StatusCode != http.StatusOK {
		m.fail(fmt.Errorf("SET_ROLE: %s %s", resp.Status, out))
		return
	}
	watcher := m.clients["alice"]
	if watcher == nil {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	defer cancel()
	p, err := watcher.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/"+nick) && p.Type == "" && p.Role == role
	})
	if err != nil {
		m.fail(fmt.Errorf("%s never became %s: %v", nick, role, err))
		return
	}
	m.rows = append(m.rows, []string{nick, room, "", p.Affiliation + "/" + p.Role, "set-by-admin", "SET_ROLE through the HTTP API, while in the room"})
}

// meeting drives demo users and records what each got.
type meeting struct {
	ctx     context.Context
	srv     *prosodytest.Server
	gavel   string
	clients map[string]*xclient.Client
	rows    [][]string
	err     error
}

func (m *meeting) client(user string) (*xclient.Client, error) {
	if m.clients == nil {
		m.clients = map[string]*xclient.Client{}
	}
	if c := m.clients[user]; c != nil {
		return c, nil
	}
	var c *xclient.Client
	var err error
	if user == "guest" || user == "frank" {
		c, err = xclient.Login(m.ctx, m.srv.C2SAddr, "", prosodytest.GuestHost, "")
	} else {
		c, err = xclient.Login(m.ctx, m.srv.C2SAddr, user, prosodytest.Host, "pw")
	}
	if err != nil {
		return nil, err
	}
	m.clients[user] = c
	return c, nil
}

// mint runs `gavel token mint` with the demo's shared secret.
func (m *meeting) mint(args ...string) string {
	full := append([]string{"token", "mint", "-secret-env", "GAVEL_DEMO_SECRET", "-iss", "demo"}, args...)
	cmd := exec.Command(m.gavel, full...)
	cmd.Env = append(os.Environ(), "GAVEL_DEMO_SECRET="+secret)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		m.fail(fmt.Errorf("gavel token mint: %v: %s", err, errb.String()))
		return ""
	}
	fmt.Printf("    $ gavel %s\n", strings.Join(full, " "))
	return strings.TrimSpace(out.String())
}

func (m *meeting) join(user, room, token string) {
	c, err := m.client(user)
	if err != nil {
		m.fail(err)
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	tokenDesc := "no token"
	if token != "" {
		tokenDesc = "token"
	}
	res, err := c.Knock(ctx, prosodytest.Component, room, token)
	if err != nil {
		var xe *xclient.Error
		if errors.As(err, &xe) {
			m.rows = append(m.rows, []string{user, room, tokenDesc, "refused", xe.App, xe.Text})
			return
		}
		m.fail(err)
		return
	}
	p, err := c.Join(ctx, room, user)
	if err != nil {
		m.fail(fmt.Errorf("%s joining %s: %v", user, room, err))
		return
	}
	m.rows = append(m.rows, []string{user, room, tokenDesc, p.Affiliation + "/" + p.Role, res.Reason, "first presence already has this role"})
}

func (m *meeting) leave(user, room string) {
	if c := m.clients[user]; c != nil {
		_ = c.Leave(m.ctx, room, user)
		m.rows = append(m.rows, []string{user, room, "", "left", "", ""})
	}
}

func (m *meeting) waitRole(user, room, aff, why string) {
	c := m.clients[user]
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	defer cancel()
	p, err := c.WaitPresence(ctx, func(p xclient.Presence) bool {
		return strings.EqualFold(p.From, room+"/"+user) && p.Affiliation == aff
	})
	if err != nil {
		m.fail(fmt.Errorf("%s never became %s in %s: %v", user, aff, room, err))
		return
	}
	m.rows = append(m.rows, []string{user, room, "", p.Affiliation + "/" + p.Role, "handover", why})
}

func (m *meeting) fail(err error) {
	if m.err == nil {
		m.err = err
	}
	fmt.Fprintln(os.Stderr, "    error:", err)
}

func (m *meeting) print() {
	step("who got which role, and why")
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    USER\tROOM\tKNOCKED WITH\tGOT\tREASON\tNOTE")
	for _, r := range m.rows {
		fmt.Fprintln(tw, "    "+strings.Join(r, "\t"))
	}
	tw.Flush()
}

func (m *meeting) close() {
	for _, c := range m.clients {
		c.Close()
	}
}

// waitConnected asks gavel for disco#info until it answers.
func waitConnected(ctx context.Context, c *xclient.Client, gavelDone <-chan error) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-gavelDone:
			return fmt.Errorf("gavel exited at start: %v", err)
		default:
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.IQ(qctx, prosodytest.Component, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`, nil)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("gavel did not connect to Prosody within 15s")
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

const configTemplate = `# written by gavel-demo
component:
  jid: mod.example.test
  address: %s
  secret: %q
muc:
  - domain: conference.example.test
log:
  level: debug
  format: console
http:
  listen: %s
  admin_token:
    secrets: [%q]
data_dir: %s
admins: [admin@example.test]
tenants:
  default:
    policy: token
    guests: deny
    token:
      app_id: demo
      secrets: [%q]
  acme:
    policy: auto-owner
    guests: member
  party:
    policy: all-owners
    guests: member
  town:
    viewers: true
    meetings:
      url_template: "https://meet.example.test/{room}?jwt={token}"
`

// adminToken mints an admin token for tenant sub with gavel token mint.
func (m *meeting) adminToken(sub string, extra ...string) string {
	full := append([]string{"token", "mint", "-secret-env", "GAVEL_DEMO_ADMIN_SECRET", "-sub", sub, "-admin", "-name", "demo-admin"}, extra...)
	cmd := exec.Command(m.gavel, full...)
	cmd.Env = append(os.Environ(), "GAVEL_DEMO_ADMIN_SECRET="+adminSecret)
	out, err := cmd.Output()
	if err != nil {
		m.fail(fmt.Errorf("mint admin token: %v", err))
		return ""
	}
	return strings.TrimSpace(string(out))
}

// console prints the console's address and an admin token to sign in
// with, for the tenant of meeting 1 (standup), which is still going on.
func (m *meeting) console(httpAddr, dir string) {
	tok := m.adminToken("example.test", "-ttl", "12h")
	if tok == "" {
		return
	}
	path := filepath.Join(dir, "console-token.txt")
	_ = os.WriteFile(path, []byte(tok+"\n"), 0o600)
	step("console: http://%s/console/", httpAddr)
	fmt.Printf("    sign in with the admin token of tenant example.test (12 hours; also in %s):\n    %s\n", path, tok)
	fmt.Printf("    meeting 1, standup@%s, is there: alice is moderator (token-moderator); set her role, kick or ban.\n", prosodytest.MUC)
}

// meetingOverHTTP makes a meeting with POST /v1/meetings, shows its three
// links, and joins one user with each.
func (m *meeting) meetingOverHTTP(httpAddr string) {
	admin := m.adminToken("town")
	if admin == "" {
		return
	}
	end := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	body := `{"endDate": "` + end + `", "roomNamePrefix": "townhall", "fields": ["hostRoomUrl", "viewerRoomUrl"], "templateType": "viewerMode"}`
	fmt.Printf("    $ curl -X POST -H 'Authorization: Bearer $ADMIN' -d '%s' http://%s/v1/meetings\n", body, httpAddr)
	req, _ := http.NewRequestWithContext(m.ctx, "POST", "http://"+httpAddr+"/v1/meetings", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.fail(err)
		return
	}
	defer resp.Body.Close()
	var out struct {
		MeetingID, RoomName, HostRoomURL, RoomURL, ViewerRoomURL string
		Tokens                                                   struct{ Host, Participant, Viewer string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		m.fail(fmt.Errorf("POST /v1/meetings: %s %v", resp.Status, err))
		return
	}
	short := func(u string) string {
		if i := strings.Index(u, "jwt="); i >= 0 && len(u) > i+16 {
			return u[:i+16] + "..."
		}
		return u
	}
	fmt.Printf("    %s meeting %s, room %s\n", resp.Status, out.MeetingID, out.RoomName)
	fmt.Printf("    host link:        %s (host rights until the end date plus 1h)\n", short(out.HostRoomURL))
	fmt.Printf("    participant link: %s\n", short(out.RoomURL))
	fmt.Printf("    viewer link:      %s (no voice)\n", short(out.ViewerRoomURL))
	m.join("gina", out.RoomName, out.Tokens.Host)
	m.join("hank", out.RoomName, out.Tokens.Participant)
	m.join("ivy", out.RoomName, out.Tokens.Viewer)
}
