// Package pgtest runs a real PostgreSQL on a free loopback port for tests
// and the benchmark: Debian's binaries (found under
// /usr/lib/postgresql/*/bin), a cluster made by initdb in a private temporary
// directory, trust authentication on 127.0.0.1 only, and stop, kill and
// restart. As root, initdb and postgres run as the postgres user, since
// PostgreSQL refuses to run as root.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gavelxmpp/gavel/internal/loopback"
)

// Options shape the server.
type Options struct {
	// NoFsync turns fsync off (faster; a crash of the machine, not of
	// PostgreSQL, may lose commits). Tests of durability leave it false.
	NoFsync bool
}

// Server is one running (or stopped) PostgreSQL cluster.
type Server struct {
	// Dir holds the cluster (Dir/data), the socket and the log.
	Dir  string
	Addr string // 127.0.0.1:port
	Port int

	cred *syscall.Credential
	opts Options

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	dbs  atomic.Int64
}

// BinDir returns the directory of Debian's PostgreSQL binaries (the newest
// version when several are installed), or an error telling how to get them.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
	}
	return "", errors.New("pgtest: PostgreSQL is not installed: run `make deps` (apt-get install postgresql)")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start makes a new cluster in a temporary directory and starts it on a free
// loopback port. Close stops it and removes the directory.
func Start(opts Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gavel-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{Dir: dir, opts: opts}
	if os.Geteuid() == 0 {
		cred, err := postgresUser()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		s.cred = cred
		// The postgres user must reach its files through dir.
		err = os.Chmod(dir, 0o755)
		if err == nil {
			err = os.Chown(dir, int(cred.Uid), int(cred.Gid))
		}
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"),
		"-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	ports, err := loopback.Ports(1)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s.Port = ports[0]
	s.Addr = fmt.Sprintf("127.0.0.1:%d", s.Port)
	if err := s.Restart(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs the postgres user (apt-get install postgresql makes it): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: postgres user has ids %q and %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// DSN returns the connection string of database db on this server.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", s.Addr, db)
}

// CreateDB creates a new, empty database with a fresh name and returns its
// DSN.
func (s *Server) CreateDB(ctx context.Context) (string, error) {
	name := fmt.Sprintf("gavel_%d", s.dbs.Add(1))
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return s.DSN(name), nil
}

// Restart starts PostgreSQL again (after Stop or Kill) on the same port and
// waits until it accepts connections. After a kill, the old backends may
// still hold the shared memory for a moment (PostgreSQL then refuses to
// start, rightly): Restart tries again for a few seconds.
func (s *Server) Restart() error {
	var err error
	for try := 0; try < 50; try++ {
		if err = s.start(); err == nil || !strings.Contains(err.Error(), "pre-existing shared memory block") {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func (s *Server) start() error {
	bin, err := BinDir()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("pgtest: already running")
	}
	fsync := "on"
	if s.opts.NoFsync {
		fsync = "off"
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(s.Dir, "data"),
		"-p", strconv.Itoa(s.Port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+s.Dir,
		"-c", "fsync="+fsync, "-c", "max_connections=200", "-c", "logging_collector=off")
	logPath := filepath.Join(s.Dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: s.cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgtest: start postgres: %w", err)
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
			log, _ := os.ReadFile(logPath)
			if len(log) > 2000 {
				log = log[len(log)-2000:]
			}
			return fmt.Errorf("pgtest: postgres exited at start:\n%s", log)
		default:
		}
		if loopback.Listening(s.Addr) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn, err := pgx.Connect(ctx, s.DSN("postgres"))
			if err == nil {
				_ = conn.Close(ctx)
				cancel()
				return nil
			}
			cancel()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("pgtest: postgres did not accept connections within 30s; see %s", logPath)
}

// Stop ends PostgreSQL with a fast shutdown (SIGINT: clients are
// disconnected, commits are kept) and waits.
func (s *Server) Stop() error { return s.signal(syscall.SIGINT, 20*time.Second) }

// Kill ends PostgreSQL and its backends with SIGKILL and waits; the next
// start recovers from the WAL.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL, 10*time.Second) }

func (s *Server) signal(sig syscall.Signal, wait time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	pid := s.cmd.Process.Pid
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(-pid, sig) // the backends too
	} else {
		_ = s.cmd.Process.Signal(sig)
	}
	select {
	case <-s.done:
	case <-time.After(wait):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
	// Backends of a killed postmaster exit on their own; wait for the
	// port to close so that a restart binds it again.
	for i := 0; i < 500 && loopback.Listening(s.Addr); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if sig == syscall.SIGKILL {
		// A backend that outlived the postmaster keeps the shared
		// memory and the port: wait until the whole group is gone.
		for i := 0; i < 500 && syscall.Kill(-pid, syscall.SIGKILL) == nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// Log returns PostgreSQL's log.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "postgres.log"))
	return string(b)
}

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	err := s.Stop()
	if rerr := os.RemoveAll(s.Dir); err == nil {
		err = rerr
	}
	return err
}

var (
	sharedMu  sync.Mutex
	shared    *Server
	sharedErr error
)

// Shared returns one server for the whole test binary, started on first
// use; the binary's TestMain stops it with StopShared. Each test takes a
// database of its own with CreateDB.
func Shared() (*Server, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = Start(Options{})
	}
	return shared, sharedErr
}

// StopShared stops the server Shared started, if any.
func StopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		_ = shared.Close()
		shared = nil
	}
}
