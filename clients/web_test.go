package clients_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
)

// TestWeb drives the page in clients/web in headless Chromium against the
// shared Prosody (over its WebSocket) and gavel, as a person would: fill in
// the token, press the button, read the roster. The page and its modules
// (@gavel/knock, Strophe.js from node_modules) are served as static files
// from this directory on a loopback port.
func TestWeb(t *testing.T) {
	chromium := tool(t, "the web page's test needs Chromium", "chromium", "chromium-browser", "google-chrome")
	if _, err := os.Stat("js/node_modules/strophe.js/dist/strophe.esm.js"); err != nil {
		missing(t, "clients/js/node_modules is not installed (npm ci)")
	}
	h := need(t)
	f := h.fixture(t, "web")
	solo := "web-solo@" + prosodytest.MUC
	soloToken := h.mint(t, "-room", "web-solo", "-user-id", "web-bob", "-name", "Bob")
	site := serveStatic(t, ".")

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // root in a container
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	begin := time.Now()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Logf("chromium started in %v", time.Since(begin).Round(time.Millisecond))

	// open loads the page for user in a new tab, types token and presses
	// the button; it returns the tab, its console log and a stop function.
	open := func(t *testing.T, user, room, nick, token string) (context.Context, *consoleLog) {
		t.Helper()
		tab, cancel := chromedp.NewContext(browser)
		t.Cleanup(cancel)
		tab, cancelTimeout := context.WithTimeout(tab, 20*time.Second)
		t.Cleanup(cancelTimeout)
		log, err := listenConsole(tab)
		if err != nil {
			t.Fatalf("open a tab: %v", err)
		}
		q := url.Values{
			"ws": {h.srv.WebSocketURL()}, "jid": {user + "@" + prosodytest.Host}, "password": {password},
			"component": {prosodytest.Component}, "room": {room}, "nick": {nick},
		}
		if err := chromedp.Do(tab,
			chromedp.Navigate(site+"/web/index.html?"+q.Encode()),
			chromedp.WaitReady(chromedp.CSS("#token")),
			// Pasted, as a person would: typing 400 characters takes seconds.
			chromedp.SetValue(chromedp.CSS("#token"), token),
			chromedp.Click(chromedp.CSS("#join")),
		); err != nil {
			t.Fatalf("load the page and knock: %v\nconsole:\n%s", err, log)
		}
		return tab, log
	}

	// firstRoster waits until the page has its first roster and returns
	// the status line, the roster's text and each occupant's role. gavel's
	// own occupant, a moderator in every room, is not in the roster: the
	// page says "moderated by gavel" instead.
	firstRoster := func(t *testing.T, tab context.Context, log *consoleLog) (string, string, map[string]string) {
		t.Helper()
		if err := chromedp.Do(tab, chromedp.WaitVisible(chromedp.CSS(`#roster[data-state="ready"]`))); err != nil {
			s, _ := chromedp.Run(tab, chromedp.Text(chromedp.CSS("#status")))
			t.Fatalf("no roster: %v\nstatus: %s\nconsole:\n%s\n%s", err, s, log, h.logs())
		}
		statusText, err1 := chromedp.Run(tab, chromedp.Text(chromedp.CSS("#status")))
		rosterText, err2 := chromedp.Run(tab, chromedp.Text(chromedp.CSS("#roster")))
		rows, err3 := chromedp.Run(tab, chromedp.Evaluate[[]map[string]string](
			`[...document.querySelectorAll("#roster tbody tr")].map(tr => ({nick: tr.dataset.nick, role: tr.dataset.role}))`))
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("read the roster: %v", err)
		}
		roles := map[string]string{}
		for _, r := range rows {
			roles[r["nick"]] = r["role"]
		}
		return statusText, rosterText, roles
	}

	t.Run("moderator token shows moderator in the first roster", func(t *testing.T) {
		tab, log := open(t, f.Users[0], f.Room, "Alice", f.Tokens["moderator"])
		status, roster, roles := firstRoster(t, tab, log)
		if len(roles) != 1 || roles["Alice"] != "moderator" || !strings.Contains(roster, "moderator") {
			t.Errorf("roster %v (%q), want Alice moderator alone", roles, roster)
		}
		if !strings.Contains(status, "as moderator (token-moderator)") {
			t.Errorf("status %q", status)
		}
		screenshot(t, tab, "moderator")
	})

	t.Run("participant token does not", func(t *testing.T) {
		tab, log := open(t, f.Users[1], solo, "Bob", soloToken)
		_, roster, roles := firstRoster(t, tab, log)
		if len(roles) != 1 || roles["Bob"] != "participant" || strings.Contains(roster, "moderator") {
			t.Errorf("roster %v (%q), want Bob participant alone and no moderator", roles, roster)
		}
		screenshot(t, tab, "participant")
	})

	t.Run("expired token shows the refusal reason", func(t *testing.T) {
		tab, log := open(t, f.Users[2], f.Room, "Carol", f.Tokens["expired"])
		if err := chromedp.Do(tab, chromedp.WaitVisible(chromedp.CSS(`#status[data-outcome="refused"]`))); err != nil {
			s, _ := chromedp.Run(tab, chromedp.Text(chromedp.CSS("#status")))
			t.Fatalf("no refusal: %v\nstatus: %s\nconsole:\n%s", err, s, log)
		}
		status, err1 := chromedp.Run(tab, chromedp.Text(chromedp.CSS("#status")))
		hidden, err2 := chromedp.Run(tab, chromedp.Evaluate[bool](`document.getElementById("roster").hidden`))
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("read the page: %v", err)
		}
		if !strings.HasPrefix(status, "refused: token-expired: ") || !hidden {
			t.Errorf("status %q, roster hidden %v; want the refusal and no roster", status, hidden)
		}
		screenshot(t, tab, "expired")
	})
}

// serveStatic serves dir on a loopback port for the test's duration and
// returns its base URL.
func serveStatic(t *testing.T, dir string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// consoleLog collects a tab's console messages and uncaught exceptions.
type consoleLog struct {
	mu    sync.Mutex
	lines []string
}

func (c *consoleLog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

// listenConsole opens the tab and collects its console.
func listenConsole(tab context.Context) (*consoleLog, error) {
	c := &consoleLog{}
	if err := chromedp.Do(tab); err != nil {
		return nil, err
	}
	return c, chromedp.Listen(tab, func(ev any) {
		var line string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			line = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			line = fmt.Sprintf("exception: %s %s:%d", ev.ExceptionDetails.Text, ev.ExceptionDetails.URL, ev.ExceptionDetails.LineNumber)
			if e := ev.ExceptionDetails.Exception; e != nil {
				line += " " + e.Description
			}
		default:
			return
		}
		c.mu.Lock()
		c.lines = append(c.lines, line)
		c.mu.Unlock()
	})
}

// screenshot saves the tab as a PNG in $GAVEL_WEB_SCREENSHOTS, when set,
// for a person to look at.
func screenshot(t *testing.T, tab context.Context, name string) {
	dir := os.Getenv("GAVEL_WEB_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	_ = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
}
