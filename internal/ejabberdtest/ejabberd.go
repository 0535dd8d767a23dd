// Package ejabberdtest runs a real ejabberd on free loopback ports for
// tests, as package prosodytest does for Prosody: a config written from a
// template, a private spool and log directory, users registered in band
// (XEP-0077, a few milliseconds each), and stop, kill and restart.
//
// The Erlang VM is started directly (not through ejabberdctl) as a child
// process, without Erlang distribution: no epmd is started, no node name is
// registered and no cookie is written, so nothing outlives the server but its
// directory. As root it runs as the ejabberd system user; the directory given
// to Start must then be reachable by that user (os.MkdirTemp("", ...) is,
// testing.T.TempDir is not).
//
// It runs the system's ejabberd (23.01 on Debian bookworm) unless told
// otherwise: Options.Root, or $GAVEL_EJABBERD_ROOT, names a directory into
// which an ejabberd .deb and the Erlang libraries it needs were unpacked
// (dpkg-deb -x), such as the ejabberd 24.12 that make deps-servers installs
// (see Root24). Such a root runs on the system's Erlang VM; its libraries
// come first in ERL_LIBS.
package ejabberdtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/gavelxmpp/gavel/internal/loopback"
)

// Fixed names inside every test server; they equal package prosodytest's,
// so tests can run against either server.
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
	// RestrictRoomCreation lets only the component create rooms (the
	// equivalent of Prosody's restrict_room_creation = "admin").
	RestrictRoomCreation bool
	// LogLevel is ejabberd's log level (default "warning").
	LogLevel string
	// ExtraConfig is appended to the YAML config at the top level.
	ExtraConfig string
	// Root is where ejabberd is installed: "/" for the system's, or a
	// directory a .deb was unpacked into. Empty: DefaultRoot.
	Root string
}

// Server is one running (or stopped) ejabberd.
type Server struct {
	Dir           string
	ConfigPath    string
	C2SAddr       string
	ComponentAddr string
	Secret        string
	opts          Options

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// The Erlang VM of the Debian package (ejabberd 23.01 in bookworm); every
// root runs on it.
const erlPath = "/usr/bin/erl"

// DefaultRoot returns $GAVEL_EJABBERD_ROOT, else "/" (the system's ejabberd).
func DefaultRoot() string {
	if r := os.Getenv("GAVEL_EJABBERD_ROOT"); r != "" {
		return r
	}
	return "/"
}

// Root24 returns the ejabberd 24.12 root that make deps-servers installs:
// $GAVEL_EJABBERD24_ROOT, else bin/servers/ejabberd-24 in the module's
// directory. Whether ejabberd is there is InstalledAt's question.
func Root24() string {
	if r := os.Getenv("GAVEL_EJABBERD24_ROOT"); r != "" {
		return r
	}
	dir, err := os.Getwd()
	if err != nil {
		return filepath.Join("bin", "servers", "ejabberd-24")
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "bin", "servers", "ejabberd-24")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return filepath.Join("bin", "servers", "ejabberd-24")
		}
		dir = parent
	}
}

// install is one ejabberd: its application directory and ERL_LIBS.
type install struct {
	app     string // .../ejabberd-24.12/ (holds ebin/ejabberd.app)
	erlLibs string
}

// find locates ejabberd under root, or says how to get it.
func find(root string) (install, error) {
	how := "run `make deps` (apt-get install ejabberd)"
	if root != "/" {
		how = "run `make deps-servers`"
	}
	if _, err := os.Stat(erlPath); err != nil {
		return install{}, fmt.Errorf("ejabberdtest: erl is not installed: %s", how)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return install{}, fmt.Errorf("ejabberdtest: %w", err)
	}
	matches, _ := filepath.Glob(filepath.Join(root, "usr/lib/*/ejabberd-*/ebin/ejabberd.beam"))
	matches2, _ := filepath.Glob(filepath.Join(root, "usr/lib/ejabberd-*/ebin/ejabberd.beam"))
	matches = append(matches, matches2...)
	if len(matches) == 0 {
		return install{}, fmt.Errorf("ejabberdtest: ejabberd is not installed in %s: %s", root, how)
	}
	app := filepath.Dir(filepath.Dir(matches[0]))
	libs := filepath.Dir(app)
	if root != "/" {
		// The Erlang libraries unpacked beside it (p1_xmpp, fast_xml, ...)
		// come before the system's older ones of the same name.
		libs = filepath.Join(root, "usr", "lib", "erlang", "lib") + ":" + libs
	}
	return install{app: app, erlLibs: libs}, nil
}

// Installed reports whether the default ejabberd (DefaultRoot) can be
// started here, and if not why.
func Installed() error { return InstalledAt(DefaultRoot()) }

// InstalledAt reports whether the ejabberd under root can be started here,
// and if not why.
func InstalledAt(root string) error {
	_, err := find(root)
	return err
}

// Version returns the release version of the ejabberd under root, from its
// application file: "23.01", "24.12" (without Debian's revision).
func Version(root string) (string, error) {
	in, err := find(root)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(in.app, "ebin", "ejabberd.app"))
	if err != nil {
		return "", fmt.Errorf("ejabberdtest: %w", err)
	}
	m := vsnRE.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("ejabberdtest: no vsn in %s", filepath.Join(in.app, "ebin", "ejabberd.app"))
	}
	v, _, _ := strings.Cut(string(m[1]), "-")
	return v, nil
}

var vsnRE = regexp.MustCompile(`\{vsn,\s*"([^"]+)"\}`)

// Start writes a config under dir and starts ejabberd on free loopback
// ports. It returns once both the client and the component ports listen.
func Start(dir string, opts Options) (*Server, error) {
	if opts.Root == "" {
		opts.Root = DefaultRoot()
	}
	if _, err := find(opts.Root); err != nil {
		return nil, err
	}
	if opts.Secret == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		opts.Secret = hex.EncodeToString(b)
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warning"
	}
	ports, err := loopback.Ports(2)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Dir:           dir,
		ConfigPath:    filepath.Join(dir, "ejabberd.yml"),
		C2SAddr:       fmt.Sprintf("127.0.0.1:%d", ports[0]),
		ComponentAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		Secret:        opts.Secret,
		opts:          opts,
	}
	for _, d := range []string{dir, filepath.Join(dir, "spool"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("ejabberdtest: %w", err)
		}
	}
	var buf bytes.Buffer
	if err := configTemplate.Execute(&buf, map[string]any{
		"C2SPort": ports[0], "ComponentPort": ports[1], "Opts": opts, "Secret": s.Secret,
		"Host": Host, "GuestHost": GuestHost, "MUC": MUC, "Component": Component,
	}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.ConfigPath, buf.Bytes(), 0o640); err != nil {
		return nil, fmt.Errorf("ejabberdtest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "inetrc"), []byte("{lookup,[\"file\",\"native\"]}.\n{host,{127,0,0,1}, [\"localhost\"]}.\n"), 0o640); err != nil {
		return nil, fmt.Errorf("ejabberdtest: %w", err)
	}
	if err := s.Restart(); err != nil {
		return nil, err
	}
	return s, nil
}

// credential returns the ejabberd system user when running as root, so the
// VM does not run as root; nil otherwise (it runs as the current user).
// A private install the ejabberd user cannot read (one unpacked under a
// directory private to root, as a CI checkout in a mktemp -d directory is)
// runs as root too.
func credential(in install) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("ejabberd")
	if err != nil {
		return nil, fmt.Errorf("ejabberdtest: running as root needs the ejabberd system user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if !can(cred, "-r", filepath.Join(in.app, "ebin", "ejabberd.app")) {
		return nil, nil
	}
	return cred, nil
}

// can reports whether test(1) with flag succeeds for path as cred's user:
// can(cred, "-r", file) reads file, can(cred, "-x", dir) enters dir.
func can(cred *syscall.Credential, flag, path string) bool {
	probe := exec.Command("/bin/test", flag, path)
	probe.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return probe.Run() == nil
}

// chown gives dir and everything under it to cred's user.
func chown(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	}); err != nil {
		return fmt.Errorf("ejabberdtest: %w", err)
	}
	// The user must be able to reach dir.
	if !can(cred, "-x", dir) {
		return fmt.Errorf("ejabberdtest: the ejabberd user cannot reach %s: use a directory from os.MkdirTemp(\"\", ...)", dir)
	}
	return nil
}

// Restart starts ejabberd again (after Stop or Kill) with the same config
// and ports, and waits until it listens.
func (s *Server) Restart() error {
	in, err := find(s.opts.Root)
	if err != nil {
		return err
	}
	cred, err := credential(in)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("ejabberdtest: already running")
	}
	if err := chown(s.Dir, cred); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "logs", "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("ejabberdtest: %w", err)
	}
	// What ejabberdctl foreground runs, minus distribution: the VM needs no
	// node name for a single server, and then starts no epmd.
	cmd := exec.Command(erlPath, "+K", "true", "+P", "250000",
		"-env", "ERL_CRASH_DUMP_BYTES", "0",
		"-mnesia", "dir", strconv.Quote(filepath.Join(s.Dir, "spool")),
		"-s", "ejabberd", "-noinput", "-noshell")
	cmd.Dir = s.Dir
	cmd.Env = []string{
		"HOME=" + s.Dir,
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8",
		"EJABBERD_CONFIG_PATH=" + s.ConfigPath,
		"EJABBERD_LOG_PATH=" + filepath.Join(s.Dir, "logs", "ejabberd.log"),
		"ERL_LIBS=" + in.erlLibs,
		"ERL_INETRC=" + filepath.Join(s.Dir, "inetrc"),
		"ERL_EPMD_ADDRESS=127.0.0.1", // should anything start epmd, it stays on loopback
		"ERL_CRASH_DUMP=" + filepath.Join(s.Dir, "logs", "erl_crash.dump"),
		"ERL_MAX_PORTS=32000",
		"ERL_MAX_ETS_TABLES=1400",
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("ejabberdtest: start ejabberd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("ejabberdtest: ejabberd exited at start; see %s", filepath.Join(s.Dir, "logs"))
		default:
		}
		if loopback.Listening(s.C2SAddr) && loopback.Listening(s.ComponentAddr) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.killGroup(syscall.SIGKILL)
	<-done
	s.cmd = nil
	return fmt.Errorf("ejabberdtest: ejabberd did not listen within 30s; see %s", filepath.Join(s.Dir, "logs"))
}

// Stop ends ejabberd with SIGTERM (the VM stops cleanly) and waits.
func (s *Server) Stop() error { return s.signal(syscall.SIGTERM, 15*time.Second) }

// Kill ends ejabberd with SIGKILL and waits.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL, 5*time.Second) }

// Close stops the server; its directory is left to the caller.
func (s *Server) Close() error { return s.Kill() }

// killGroup signals the VM's process group (the VM and its port helpers).
func (s *Server) killGroup(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, sig)
}

func (s *Server) signal(sig syscall.Signal, wait time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	if sig == syscall.SIGTERM {
		_ = s.cmd.Process.Signal(sig) // the VM first; it stops its helpers
	} else {
		s.killGroup(sig)
	}
	select {
	case <-s.done:
	case <-time.After(wait):
		s.killGroup(syscall.SIGKILL)
		<-s.done
	}
	s.killGroup(syscall.SIGKILL) // helpers left behind, if any
	s.cmd = nil
	for i := 0; i < 300 && (loopback.Listening(s.C2SAddr) || loopback.Listening(s.ComponentAddr)); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Version returns the server's release version, as Version does.
func (s *Server) Version() (string, error) { return Version(s.opts.Root) }

// PID returns the running VM's process id, or 0.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log returns ejabberd's log files.
func (s *Server) Log() string {
	var b bytes.Buffer
	for _, name := range []string{"ejabberd.log", "error.log", "console.log"} {
		c, err := os.ReadFile(filepath.Join(s.Dir, "logs", name))
		if err == nil {
			fmt.Fprintf(&b, "== %s\n%s", name, c)
		}
	}
	return b.String()
}

// Register creates user@host with password by in-band registration
// (XEP-0077) over a client connection: ejabberdctl would start an Erlang
// VM per call (about a second) and needs distribution. Registering an
// existing user with the same password succeeds.
func (s *Server) Register(user, host, password string) error {
	conn, err := net.DialTimeout("tcp", s.C2SAddr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("ejabberdtest: register: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b bytes.Buffer
	b.WriteString("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='")
	_ = xml.EscapeText(&b, []byte(host))
	b.WriteString("'><iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>")
	_ = xml.EscapeText(&b, []byte(user))
	b.WriteString("</username><password>")
	_ = xml.EscapeText(&b, []byte(password))
	b.WriteString("</password></query></iq>")
	if _, err := conn.Write(b.Bytes()); err != nil {
		return fmt.Errorf("ejabberdtest: register: %w", err)
	}
	d := xml.NewDecoder(conn)
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("ejabberdtest: register %s@%s: %w", user, host, err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok || start.Name.Local == "stream" {
			continue
		}
		if start.Name.Local != "iq" {
			if err := d.Skip(); err != nil {
				return fmt.Errorf("ejabberdtest: register: %w", err)
			}
			continue
		}
		var iq struct {
			Type  string `xml:"type,attr"`
			Error struct {
				Type string `xml:"type,attr"`
				Cond []struct {
					XMLName xml.Name
				} `xml:",any"`
				Text string `xml:"text"`
			} `xml:"error"`
		}
		if err := d.DecodeElement(&iq, &start); err != nil {
			return fmt.Errorf("ejabberdtest: register: %w", err)
		}
		_, _ = io.WriteString(conn, "</stream:stream>")
		if iq.Type == "result" {
			return nil
		}
		cond := ""
		if len(iq.Error.Cond) > 0 {
			cond = iq.Error.Cond[0].XMLName.Local
		}
		if cond == "conflict" {
			return nil // already registered
		}
		return fmt.Errorf("ejabberdtest: register %s@%s refused: %s/%s %s", user, host, iq.Error.Type, cond, iq.Error.Text)
	}
}

// The config: two virtual hosts (accounts, and anonymous guests), a MUC
// service on the first, and the component with MUC admin rights (service
// admins are owners in every room, as Prosody's component admins are).
// In-band registration is open (loopback only) and never rate limited.
var configTemplate = template.Must(template.New("ejabberd").Parse(`# written by gavel's ejabberdtest
hosts:
  - "{{.Host}}"
  - "{{.GuestHost}}"
loglevel: {{.Opts.LogLevel}}
log_rotate_count: 0
hide_sensitive_log_data: true
language: en
listen:
  -
    port: {{.C2SPort}}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    access: c2s
    starttls_required: false
  -
    port: {{.ComponentPort}}
    ip: "127.0.0.1"
    module: ejabberd_service
    hosts:
      "{{.Component}}":
        password: "{{.Secret}}"
auth_method: internal
auth_password_format: plain
host_config:
  "{{.GuestHost}}":
    auth_method: anonymous
    anonymous_protocol: sasl_anon
acl:
  admin:
    user: "admin@{{.Host}}"
  gavel:
    server: "{{.Component}}"
access_rules:
  c2s:
    allow: all
  muc_admin:
    allow: gavel
  muc_create:
{{- if .Opts.RestrictRoomCreation}}
    allow: gavel
{{- else}}
    allow: all
{{- end}}
  register:
    allow: all
shaper_rules:
  max_user_sessions: 1000
registration_timeout: infinity
modules:
  mod_disco: {}
  mod_ping: {}
  mod_register:
    access: register
    ip_access: all
append_host_config:
  "{{.Host}}":
    modules:
      mod_muc:
        host: "{{.MUC}}"
        access_admin: muc_admin
        access_create: muc_create
        max_users: 1000
        max_user_conferences: 1000
        default_room_options:
          public: true
          anonymous: true
{{.Opts.ExtraConfig}}
`))
