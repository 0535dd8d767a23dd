// Package api is gavel's HTTP interface: the JaaS-style admin commands (ban,
// unban, list bans, destroy a meeting, kick a participant), the health and
// readiness probes and the Prometheus metrics.
//
// Every command endpoint takes an admin JWT in an "Authorization: Bearer"
// header. The token must be signed by one of the configured AdminKeys, carry
// an exp claim, the claim "admin": true, and a sub equal to the tenant the
// command acts on. Requests and responses are JSON; every error is an object
// {"error": "<stable code>", "message": "<human text>"} with a matching HTTP
// status. The commands themselves run through the same command layer as the
// XMPP ad-hoc commands (see Commands), which writes the audit log line.
//
// Requests are limited per client IP address with a token bucket; request
// bodies are limited in size and decoded strictly (unknown fields are
// errors). Tokens are never logged nor echoed: a banned token is shown only
// as "sha256:" and the first 16 hex digits of its hash.
package api

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/gavelxmpp/gavel/commands"
	"github.com/gavelxmpp/gavel/store"
)

// Commands is the command layer the API drives; *commands.Service
// satisfies it, and the XMPP ad-hoc commands use the same one. It
// normalizes and validates its input and returns package commands' errors.
type Commands interface {
	// Ban stores a ban and removes the matching occupants.
	Ban(ctx context.Context, req commands.BanRequest) (commands.BanResult, error)
	// Unban removes a ban (commands.ErrNoSuchBan when there is none) and
	// returns its key as stored.
	Unban(ctx context.Context, req commands.UnbanRequest) (commands.Key, error)
	// Bans lists the active bans of a tenant.
	Bans(ctx context.Context, tenant string) ([]store.Ban, error)
	// Kick removes the occupant with the given nick from a room.
	Kick(ctx context.Context, roomJID, nick, reason, by string) error
	// Destroy destroys a room.
	Destroy(ctx context.Context, roomJID, reason, by string) error
	// TenantOf returns the tenant a room JID belongs to.
	TenantOf(roomJID string) (string, error)
}

// Defaults of Options.
const (
	// DefaultMaxBodyBytes is the request body limit when Options.MaxBodyBytes
	// is zero.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultRatePerMinute is the per-client request rate when
	// Options.RatePerMinute is zero.
	DefaultRatePerMinute = 600
)

// Timeouts of the HTTP server and of one command.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	shutdownTimeout   = 5 * time.Second
	commandTimeout    = 20 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Options configure a Server.
type Options struct {
	// Commands is the command layer; it is required.
	Commands Commands
	// Ready returns nil when the component is connected and the store open,
	// and otherwise an error whose message /readyz shows. Nil means always
	// ready.
	Ready func() error
	// Keys verify the admin tokens. Without any key every command is
	// refused with 401.
	Keys AdminKeys
	// Registry is what /metrics serves; the Server registers its own
	// gavel_http_requests_total there. Nil uses a private registry.
	Registry *prometheus.Registry
	// Logger receives one line per request; nil discards them.
	Logger *zap.Logger
	// MaxBodyBytes limits request bodies; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// RatePerMinute is the number of requests a client IP address may make
	// per minute (with a burst of as many); zero means DefaultRatePerMinute.
	RatePerMinute int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// MUCDomain is the MUC domain of rooms named without one, as by
	// PUT /kick-participant?room=NAME&prefix=TENANT (Jitsi's
	// muc_mapper_domain_base with its prefix); empty refuses such names.
	MUCDomain string
	// Meetings serves /v1/meetings (Whereby's shape); nil: not served.
	Meetings Meetings
	// Rooms gives the console (/console/) its picture of the rooms; nil:
	// no console.
	Rooms commands.RoomViewer
	// Health reports the XMPP connections and the store for the console's
	// health view; nil shows only Ready.
	Health func() Health
	// ConsolePoll is how often the console looks at the rooms someone
	// watches live; zero means DefaultConsolePoll.
	ConsolePoll time.Duration
}

// Server serves the API. Its methods are safe for concurrent use.
type Server struct {
	cmds     Commands
	ready    func() error
	verifier *verifier
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	log      *zap.Logger
	maxBody  int64
	limiter  *limiter
	now      func() time.Time
	handler  http.Handler

	mucDomain string
	meetings  Meetings
	console   *console // nil without Options.Rooms
}

// New checks opts and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Commands == nil {
		return nil, errors.New("api: Options.Commands is required")
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("api: Options.MaxBodyBytes must not be negative, got %d", opts.MaxBodyBytes)
	}
	if opts.RatePerMinute < 0 {
		return nil, fmt.Errorf("api: Options.RatePerMinute must not be negative, got %d", opts.RatePerMinute)
	}
	s := &Server{
		cmds:     opts.Commands,
		ready:    opts.Ready,
		registry: opts.Registry,
		log:      opts.Logger,
		maxBody:  opts.MaxBodyBytes,
		now:      opts.Now,

		mucDomain: opts.MUCDomain,
		meetings:  opts.Meetings,
	}
	if s.ready == nil {
		s.ready = func() error { return nil }
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.maxBody == 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.now == nil {
		s.now = time.Now
	}
	rpm := opts.RatePerMinute
	if rpm == 0 {
		rpm = DefaultRatePerMinute
	}
	s.limiter = newLimiter(rpm, maxClients, s.now)
	v, err := newVerifier(opts.Keys, s.now)
	if err != nil {
		return nil, err
	}
	s.verifier = v
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gavel_http_requests_total",
		Help: "HTTP requests served, by route and status code.",
	}, []string{"route", "code"})
	if err := s.registry.Register(requests); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("api: registering metrics: %w", err)
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, fmt.Errorf("api: registering metrics: %w", err)
		}
		requests = existing
	}
	s.requests = requests
	if !s.verifier.hasKeys() {
		s.log.Warn("the admin API has no keys: every command will be refused (set http.admin_token)")
	}
	if opts.Rooms != nil {
		s.console = newConsole(s, opts)
	}
	s.handler = s.routes()
	if s.console != nil {
		s.console.start()
	}
	return s, nil
}

// Handler returns the API's handler, with rate limiting, logging and metrics.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves the API on ln until ctx is done, then shuts down, giving
// requests in flight up to five seconds to finish. It returns nil after a
// clean stop, and otherwise the error that stopped it. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          s.stdLog(),
		// Requests in flight keep running during the graceful shutdown.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if s.console != nil {
		// Live streams end when the server shuts down, rather than hold
		// the shutdown up; the knock history is sampled meanwhile.
		srv.RegisterOnShutdown(s.console.close)
		go s.console.sampleEvery(ctx, time.Minute)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
	}
	serr := <-errc
	if err != nil {
		return fmt.Errorf("api: shutdown: %w", err)
	}
	if serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("api: %w", serr)
	}
	return nil
}

// routes builds the handler tree.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	names := map[string]string{}
	handle := func(pattern, route string, h http.HandlerFunc) {
		names[pattern] = route
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			infoOf(r).route = route
			h(w, r)
		}))
	}
	const jaccess = "/jaccess/v1/access-management/{appId}"
	handle("POST "+jaccess+"/ban/user/{userId}", "ban_user", s.banUser)
	handle("DELETE "+jaccess+"/ban/user/{userId}", "unban_user", s.unbanUser)
	handle("POST "+jaccess+"/ban/jwt", "ban_jwt", s.banJWT)
	handle("DELETE "+jaccess+"/ban/jwt", "unban_jwt", s.unbanJWT)
	handle("GET "+jaccess+"/bans", "list_bans", s.listBans)
	handle("POST /conference-commands/v1/meeting", "meeting", s.meeting)
	handle("POST /end-meeting", "end_meeting", s.endMeeting)
	handle("PUT /kick-participant", "kick_participant", s.kickParticipant)
	handle("POST /v1/meetings", "create_meeting", s.createMeeting)
	handle("GET /v1/meetings", "list_meetings", s.listMeetings)
	handle("GET /v1/meetings/{id}", "get_meeting", s.getMeeting)
	handle("DELETE /v1/meetings/{id}", "delete_meeting", s.deleteMeeting)
	handle("GET /healthz", "healthz", s.healthz)
	handle("GET /readyz", "readyz", s.readyz)
	metrics := promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
		ErrorLog:      s.stdLog(),
		ErrorHandling: promhttp.ContinueOnError,
	})
	handle("GET /metrics", "metrics", metrics.ServeHTTP)
	if s.console != nil {
		s.console.routes(handle)
	}
	return s.middleware(mux, names)
}

// stdLog adapts the logger for net/http and promhttp, at warn level.
func (s *Server) stdLog() *log.Logger {
	l, err := zap.NewStdLogAt(s.log, zap.WarnLevel)
	if err != nil {
		return zap.NewStdLog(s.log)
	}
	return l
}
