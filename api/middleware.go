package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// reqInfo is what a request's log line and metrics need; handlers fill it.
type reqInfo struct {
	route  string // a fixed route name; "" until a route matched
	tenant string
	result string // "ok" or the error code
	err    error  // the cause of an internal error, for the log only
}

type infoKey struct{}

// infoOf returns the reqInfo of r; a request the middleware never saw gets
// a throwaway one.
func infoOf(r *http.Request) *reqInfo {
	if i, ok := r.Context().Value(infoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

// routeUnmatched labels requests that matched no route.
const routeUnmatched = "unmatched"

// probeRoutes are logged at debug level and, but for /metrics, not rate
// limited, so that probes never fail for want of tokens.
var probeRoutes = map[string]bool{"healthz": true, "readyz": true, "metrics": true}

// statusWriter records the status and replaces the ServeMux's plain-text 404
// and 405 responses with JSON errors.
type statusWriter struct {
	http.ResponseWriter
	info    *reqInfo
	status  int
	written bool // the header went out
	swallow bool // a ServeMux 404 or 405 is being replaced
	replace bool // the replacement is being written
}

func (w *statusWriter) WriteHeader(code int) {
	if w.written || w.swallow {
		return
	}
	if w.info.route == "" && !w.replace && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		w.swallow, w.status = true, code
		return
	}
	w.status, w.written = code, true
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.swallow {
		return len(b), nil
	}
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// middleware rate-limits, turns the ServeMux's own errors into JSON, recovers
// panics, and logs and counts every request.
func (s *Server) middleware(mux *http.ServeMux, names map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
		sw := &statusWriter{ResponseWriter: w, info: info}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					s.finish(sw, r, start)
					panic(p)
				}
				s.log.Error("panic serving request", zap.String("route", info.route), zap.Any("panic", p), zap.Stack("stack"))
				if !sw.written {
					sw.swallow, sw.replace = false, true
					writeError(sw, r, &apiError{http.StatusInternalServerError, "internal", "internal error: see gavel's log"})
				}
				info.result = "internal"
			}
			s.finish(sw, r, start)
		}()
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			if ok, wait := s.limiter.allow(clientKey(r)); !ok {
				if _, pattern := mux.Handler(r); pattern != "" {
					info.route = names[pattern]
				}
				sw.replace = true
				sw.Header().Set("Retry-After", strconv.Itoa(retryAfter(wait)))
				writeError(sw, r, &apiError{http.StatusTooManyRequests, "rate-limited", "too many requests from this address: retry later"})
				return
			}
		}
		mux.ServeHTTP(sw, r)
		if sw.swallow {
			sw.swallow, sw.replace = false, true
			sw.Header().Del("Content-Length")
			if sw.status == http.StatusMethodNotAllowed {
				writeError(sw, r, &apiError{http.StatusMethodNotAllowed, "method-not-allowed", r.Method + " is not allowed here (see the Allow header)"})
			} else {
				writeError(sw, r, &apiError{http.StatusNotFound, "not-found", "no such endpoint"})
			}
		}
	})
}

// finish counts the request and writes its log line. Command requests are
// logged at info (error for internal errors), probes and metrics at debug.
func (s *Server) finish(sw *statusWriter, r *http.Request, start time.Time) {
	info := sw.info
	route := info.route
	if route == "" {
		route = routeUnmatched
	}
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	s.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	level := zapcore.InfoLevel
	switch {
	case info.err != nil || status >= 500 && info.result == "internal":
		level = zapcore.ErrorLevel
	case probeRoutes[route]:
		level = zapcore.DebugLevel
	}
	ce := s.log.Check(level, "http request")
	if ce == nil {
		return
	}
	result := info.result
	if result == "" {
		result = "ok"
		if status >= 400 {
			result = strconv.Itoa(status)
		}
	}
	fields := []zap.Field{
		zap.String("route", route),
		zap.String("method", r.Method),
		zap.String("path", r.URL.Path),
		zap.String("tenant", info.tenant),
		zap.String("result", result),
		zap.Int("status", status),
		zap.String("client", clientKey(r)),
		zap.Duration("duration", time.Since(start)),
	}
	if info.err != nil {
		fields = append(fields, zap.Error(info.err))
	}
	ce.Write(fields...)
}
