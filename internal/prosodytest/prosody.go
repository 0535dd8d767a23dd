// Package prosodytest runs a real Prosody on free loopback ports for tests,
// the demo and the benchmark: a config written from a template, a private
// data directory, users written straight into its account store, and stop,
// kill and restart.
//
// It runs the system's Prosody (0.12 on Debian bookworm) unless told
// otherwise: Options.Prosody, or $GAVEL_PROSODY, names another prosody
// executable, such as the Prosody 13 that make deps-servers unpacks
// beside the system's (see Prosody13).
package prosodytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/gavelxmpp/gavel/internal/loopback"
)

// Fixed names inside every test server.
const (
	Host      = "example.test"
	GuestHost = "guest.example.test"
	MUC       = "conference.example.test"
	Component = "mod.example.test"
)

// Options shape the server.
type Options struct {
	// Secret is the component secret; empty picks a random one.
	Secret string
	// RestrictRoomCreation limits room creation to admins (gavel's
	// recommended setting: rooms exist only through a knock).
	RestrictRoomCreation bool
	// NoRoomLocking lets others into a new room before its creator
	// configures it (muc_room_locking = false, as Jitsi sets it).
	NoRoomLocking bool
	// PluginPaths are extra module directories; ExtraModules are loaded
	// globally, MUCModules on the MUC component.
	PluginPaths  []string
	ExtraModules []string
	MUCModules   []string
	// MUCAdmins are admins of the MUC component besides the component
	// (Jicofo's focus is one in a Jitsi deployment).
	MUCAdmins []string
	// ExtraConfig is appended to the global section, MUCConfig to the MUC
	// component's ("muc_room_cache_size = 1000").
	ExtraConfig string
	MUCConfig   string
	// LogLevel is Prosody's file log level (default "warn").
	LogLevel string
	// Prosody is the prosody executable to run; its prosodyctl is the one
	// beside it. Empty: $GAVEL_PROSODY, else the system's (Binary).
	Prosody string
	// NoAdminsAsOwners leaves component_admins_as_room_owners out of the
	// MUC's config: Prosody 13 then makes gavel owner only of the rooms it
	// created (0.12 always makes component admins owners). For the tests
	// of gavel's connect-time server check.
	NoAdminsAsOwners bool
	// WebSocket enables Prosody's HTTP server on a free loopback port with
	// mod_websocket (RFC 7395), open to pages of any origin; the endpoint
	// is Server.WebSocketURL.
	WebSocket bool
	// Names are the server's domains; empty fields keep the constants
	// (Host, GuestHost, MUC, Component). Shards of one deployment need
	// distinct names: the command bus routes a room by its MUC domain.
	Names Names
}

// Names are the domains inside a test server.
type Names struct {
	Host, GuestHost, MUC, Component string
}

// withDefaults fills the empty names with the constants.
func (n Names) withDefaults() Names {
	if n.Host == "" {
		n.Host = Host
	}
	if n.GuestHost == "" {
		n.GuestHost = GuestHost
	}
	if n.MUC == "" {
		n.MUC = MUC
	}
	if n.Component == "" {
		n.Component = Component
	}
	return n
}

// Server is one running (or stopped) Prosody.
type Server struct {
	Dir           string
	ConfigPath    string
	C2SAddr       string
	ComponentAddr string
	Secret        string
	// Prosody is the executable this server runs.
	Prosody string
	opts    Options

	// HTTPAddr is Prosody's HTTP server, with Options.WebSocket only.
	HTTPAddr string
	// Names are the server's domains (Options.Names, defaults filled in).
	Names Names

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns the default prosody executable ($GAVEL_PROSODY, else the
// system's), or an error telling how to get it.
func Binary() (string, error) {
	if p := os.Getenv("GAVEL_PROSODY"); p != "" {
		return checkExecutable(p, "$GAVEL_PROSODY")
	}
	p, err := exec.LookPath("prosody")
	if err != nil {
		for _, c := range []string{"/usr/bin/prosody", "/usr/local/bin/prosody"} {
			if _, e := os.Stat(c); e == nil {
				return c, nil
			}
		}
		return "", errors.New("prosodytest: prosody is not installed: run `make deps` (apt-get install prosody)")
	}
	return p, nil
}

// Prosody13 returns the Prosody 13 that make deps-servers installs:
// $GAVEL_PROSODY13, else bin/servers/prosody-13/usr/bin/prosody in the
// module's directory; an error says how to get it.
func Prosody13() (string, error) {
	if p := os.Getenv("GAVEL_PROSODY13"); p != "" {
		return checkExecutable(p, "$GAVEL_PROSODY13")
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	return checkExecutable(filepath.Join(root, "bin", "servers", "prosody-13", "usr", "bin", "prosody"), "Prosody 13")
}

func checkExecutable(p, what string) (string, error) {
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("prosodytest: %s: no prosody executable at %s: run `make deps-servers`", what, p)
	}
	return filepath.Abs(p)
}

// moduleRoot returns the directory holding go.mod, above the working
// directory (go test runs in the package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("prosodytest: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("prosodytest: no go.mod above the working directory")
		}
		dir = parent
	}
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

// Start writes a config under dir and starts Prosody on free loopback ports.
func Start(dir string, opts Options) (*Server, error) {
	if opts.Prosody == "" {
		bin, err := Binary()
		if err != nil {
			return nil, err
		}
		opts.Prosody = bin
	}
	if opts.Secret == "" {
		opts.Secret = randomSecret()
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	nports := 2
	if opts.WebSocket {
		nports = 3
	}
	ports, err := loopback.Ports(nports)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Dir:           dir,
		ConfigPath:    filepath.Join(dir, "prosody.cfg.lua"),
		C2SAddr:       fmt.Sprintf("127.0.0.1:%d", ports[0]),
		ComponentAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		Secret:        opts.Secret,
		Prosody:       opts.Prosody,
		opts:          opts,
		Names:         opts.Names.withDefaults(),
	}
	httpPort := 0
	if opts.WebSocket {
		httpPort = ports[2]
		s.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", httpPort)
		s.opts.ExtraModules = append(append([]string(nil), opts.ExtraModules...), "websocket")
	}
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o750); err != nil {
		return nil, fmt.Errorf("prosodytest: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		return nil, fmt.Errorf("prosodytest: %w", err)
	}
	var buf bytes.Buffer
	if err := configTemplate.Execute(&buf, map[string]any{
		"Dir": dir, "C2SPort": ports[0], "ComponentPort": ports[1], "HTTPPort": httpPort, "Opts": s.opts,
		"Secret": s.Secret, "Host": s.Names.Host, "GuestHost": s.Names.GuestHost, "MUC": s.Names.MUC, "Component": s.Names.Component,
		"Root": os.Geteuid() == 0,
	}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.ConfigPath, buf.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("prosodytest: %w", err)
	}
	if err := s.Restart(); err != nil {
		return nil, err
	}
	return s, nil
}

// Restart starts Prosody again (after Stop or Kill) with the same config
// and ports, and waits until it listens.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("prosodytest: already running")
	}
	cmd := exec.Command(s.Prosody, "--config", s.ConfigPath, "-F")
	logf, err := os.OpenFile(filepath.Join(s.Dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("prosodytest: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("prosodytest: start prosody: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("prosodytest: prosody exited at start; see %s", filepath.Join(s.Dir, "console.log"))
		default:
		}
		if loopback.Listening(s.C2SAddr) && loopback.Listening(s.ComponentAddr) && (s.HTTPAddr == "" || loopback.Listening(s.HTTPAddr)) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("prosodytest: prosody did not listen within 15s; see %s", filepath.Join(s.Dir, "console.log"))
}

// Stop ends Prosody with SIGTERM (a clean stop saves rooms) and waits.
func (s *Server) Stop() error { return s.signal(syscall.SIGTERM, 10*time.Second) }

// Kill ends Prosody with SIGKILL and waits.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL, 5*time.Second) }

func (s *Server) signal(sig syscall.Signal, wait time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(wait):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	// Wait for the ports to close, so a restart binds them again.
	for i := 0; i < 200 && (loopback.Listening(s.C2SAddr) || loopback.Listening(s.ComponentAddr)); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// PID returns the running process id, or 0.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// WebSocketURL is the client WebSocket endpoint (Options.WebSocket only).
func (s *Server) WebSocketURL() string { return "ws://" + s.HTTPAddr + "/xmpp-websocket" }

// Close stops the server; its directory is left to the caller.
func (s *Server) Close() error { return s.Kill() }

// Register creates a user with a password on host, writing Prosody's
// internal account store directly (prosodyctl takes a second per user).
func (s *Server) Register(user, host, password string) error {
	dir := filepath.Join(s.Dir, "data", encode(host), "accounts")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("prosodytest: %w", err)
	}
	body := fmt.Sprintf("return {\n\t[\"password\"] = %q;\n};\n", password)
	return os.WriteFile(filepath.Join(dir, encode(user)+".dat"), []byte(body), 0o600)
}

// ProsodyCtl runs prosodyctl (the one beside the server's prosody) against
// this server's config.
func (s *Server) ProsodyCtl(ctx context.Context, args ...string) ([]byte, error) {
	ctl := filepath.Join(filepath.Dir(s.Prosody), "prosodyctl")
	return exec.CommandContext(ctx, ctl, append([]string{"--config", s.ConfigPath}, args...)...).CombinedOutput()
}

// Version returns what `prosodyctl about` says of the server's version:
// "0.12.3", "13.0.1". It runs with the server's config: without one, a
// prosodyctl run as root switches to the prosody user, who may not be able
// to read a Prosody unpacked under a directory private to root.
func (s *Server) Version() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.ProsodyCtl(ctx, "about")
	if err != nil {
		return "", fmt.Errorf("prosodytest: prosodyctl about: %v: %s", err, firstLine(out))
	}
	line := firstLine(out)
	v, ok := strings.CutPrefix(line, "Prosody ")
	if !ok {
		return "", fmt.Errorf("prosodytest: prosodyctl about: unexpected first line %q", line)
	}
	return v, nil
}

// Log returns Prosody's log file contents.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "prosody.log"))
	c, _ := os.ReadFile(filepath.Join(s.Dir, "console.log"))
	return string(b) + string(c)
}

// encode is Prosody's datamanager path encoding: every byte that is not
// alphanumeric becomes %xx.
func encode(s string) string {
	var b strings.Builder
	for _, r := range []byte(s) {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteByte(r)
		} else {
			fmt.Fprintf(&b, "%%%02x", r)
		}
	}
	return b.String()
}

func randomSecret() string {
	b := make([]byte, 12)
	f, err := os.Open("/dev/urandom")
	if err == nil {
		_, _ = f.Read(b)
		f.Close()
	}
	return url.QueryEscape(fmt.Sprintf("%x", b))
}

var configTemplate = template.Must(template.New("prosody").Parse(`-- written by gavel's prosodytest
{{if .Root}}run_as_root = true{{end}}
pidfile = "{{.Dir}}/prosody.pid"
data_path = "{{.Dir}}/data"
plugin_paths = { {{range .Opts.PluginPaths}}"{{.}}"; {{end}} }
admins = { }
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "posix"; {{range .Opts.ExtraModules}}"{{.}}"; {{end}} }
modules_disabled = { "s2s"; "tls"; {{if not .Opts.WebSocket}}"http"; {{end}}"offline"; "limits" }
c2s_ports = { {{.C2SPort}} }
c2s_interfaces = { "127.0.0.1" }
component_ports = { {{.ComponentPort}} }
component_interfaces = { "127.0.0.1" }
s2s_ports = { }
http_ports = { {{if .Opts.WebSocket}}{{.HTTPPort}}{{end}} }
https_ports = { }
{{if .Opts.WebSocket}}-- Options.WebSocket: pages on other loopback ports log in over ws://.
http_interfaces = { "127.0.0.1" }
consider_websocket_secure = true
cross_domain_websocket = true
{{end}}c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
network_settings = { nagle = false }
log = { {{.Opts.LogLevel}} = "{{.Dir}}/prosody.log" }
{{.Opts.ExtraConfig}}

VirtualHost "{{.Host}}"

VirtualHost "{{.GuestHost}}"
	authentication = "anonymous"

Component "{{.MUC}}" "muc"
	admins = { "{{.Component}}"{{range .Opts.MUCAdmins}}, "{{.}}"{{end}} }
{{if not .Opts.NoAdminsAsOwners}}	-- Prosody 13 makes component admins room owners only when asked (0.12
	-- always did, and ignores the option).
	component_admins_as_room_owners = true
{{end}}	modules_enabled = { {{range .Opts.MUCModules}}"{{.}}"; {{end}} }
{{if .Opts.RestrictRoomCreation}}	restrict_room_creation = "admin"{{end}}
	muc_room_default_public = true
	muc_room_locking = {{if .Opts.NoRoomLocking}}false{{else}}true{{end}}
{{.Opts.MUCConfig}}

Component "{{.Component}}"
	component_secret = "{{.Secret}}"
`))
