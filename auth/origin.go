package auth

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxRedirects is how many same-origin redirects a key fetch follows, as
// net/http's default.
const maxRedirects = 10

// origin is a URL's scheme, host and port, with the scheme's default port
// made explicit: the unit a key source is trusted as.
func origin(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(host, port)
}

// sameOriginClient returns a copy of client that follows redirects only
// within the origin of base: a key server or JWKS URL answering with a
// redirect elsewhere would let whoever runs that host choose the keys. A
// CheckRedirect of the caller's client still applies to same-origin
// redirects.
func sameOriginClient(client *http.Client, what, base string) *http.Client {
	u, err := url.Parse(base)
	if err != nil {
		// New validated the URL; keep redirects off altogether if not.
		u = &url.URL{}
	}
	want := origin(u)
	next := client.CheckRedirect
	c := *client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if got := origin(req.URL); got != want {
			return fmt.Errorf("%s %s redirected to %s, off its origin %s: redirects are followed only within the configured scheme, host and port", what, base, req.URL.Redacted(), want)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return errors.New(what + " " + base + ": stopped after " + fmt.Sprint(maxRedirects) + " redirects")
		}
		return nil
	}
	return &c
}
