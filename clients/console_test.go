package clients_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// TestConsole drives gavel's admin console (/console/) in headless
// Chromium against the shared Prosody and gavel, as an admin would: sign
// in with an admin token, watch a room fill as clients knock and join,
// set a role and ban from the page and see the clients' presence change,
// and check that another tenant's admin sees nothing of it and that an
// action without the CSRF token is refused. With
// GAVEL_CONSOLE_SCREENSHOTS=dir it saves the main views there
// (docs/console/ holds the ones docs/console.md shows).
func TestConsole(t *testing.T) {
	chromium := tool(t, "the console's test needs Chromium", "chromium", "chromium-browser", "google-chrome")
	h := need(t)
	f := h.fixture(t, "console")
	base := "http://" + h.http + "/console/"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // root in a container
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}

	// signIn opens a tab in a browser context of its own (its own cookie
	// jar) and signs in with an admin token of tenant sub.
	signIn := func(t *testing.T, sub, shot string) (context.Context, *consoleLog) {
		t.Helper()
		tab, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		log, err := listenConsole(tab)
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(tab, chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#token"))); err != nil {
			t.Fatalf("open the console: %v", err)
		}
		snap(t, tab, shot)
		wctx, cancel := context.WithTimeout(tab, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(wctx,
			chromedp.SetValue(chromedp.CSS("#token"), mintAdmin(t, h, sub)),
			chromedp.Click(chromedp.CSS("#signin-button")),
			chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`)),
		); err != nil {
			page, _ := chromedp.Run(tab, chromedp.Evaluate[string](`location.href + "\n" + document.body.outerHTML`))
			t.Fatalf("sign in as %s: %v\npage: %s\nconsole:\n%s", sub, err, page, log)
		}
		return tab, log
	}
	// waitFor polls a JavaScript condition on the page.
	waitFor := func(t *testing.T, tab context.Context, log *consoleLog, what, cond string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(tab, 15*time.Second)
		defer cancel()
		if _, err := chromedp.Run(wctx, chromedp.Poll[bool]("!!("+cond+")", chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			text, _ := chromedp.Run(tab, chromedp.Text(chromedp.CSS("main")))
			t.Fatalf("%s: %v\npage:\n%s\nconsole:\n%s\n%s", what, err, text, log, h.logs())
		}
	}
	// fetchJS runs an asynchronous expression on the page and returns its
	// value.
	fetchJS := func(t *testing.T, tab context.Context, expr string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("evaluate: %v", err)
		}
		return v
	}

	admin, log := signIn(t, prosodytest.Host, "signin")
	room := f.Room
	card := `article[data-room="` + room + `"]`
	row := func(nick string) string { return card + ` tr[data-nick="` + nick + `"]` }
	rowJS := func(nick string) string { return `document.querySelector('` + row(nick) + `')` }

	// Two clients knock and join; the console shows them as the room does.
	join := func(user, token, nick string) (*xclient.Client, xclient.Presence) {
		c, err := xclient.Login(ctx, h.srv.C2SAddr, user, prosodytest.Host, password)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Knock(ctx, prosodytest.Component, room, token); err != nil {
			t.Fatalf("knock of %s: %v", nick, err)
		}
		p, err := c.Join(ctx, room, nick)
		if err != nil {
			t.Fatalf("join of %s: %v", nick, err)
		}
		return c, p
	}
	alice, aliceSelf := join(f.Users[0], f.Tokens["moderator"], "Alice")
	bob, bobSelf := join(f.Users[1], f.Tokens["participant"], "Bob")
	waitFor(t, admin, log, "the room with Alice and Bob", rowJS("Alice")+` && `+rowJS("Bob"))
	roles, err := chromedp.Run(admin, chromedp.Evaluate[map[string][]string](`Object.fromEntries([...document.querySelectorAll('`+card+` tbody tr')].map(tr => [tr.dataset.nick, [tr.dataset.role, tr.dataset.affiliation, tr.dataset.reason]]))`))
	if err != nil {
		t.Fatal(err)
	}
	if a := roles["Alice"]; len(a) != 3 || a[0] != aliceSelf.Role || a[1] != aliceSelf.Affiliation || a[2] != "token-moderator" {
		t.Errorf("Alice shown as %v; her client has %s/%s", a, aliceSelf.Affiliation, aliceSelf.Role)
	}
	if b := roles["Bob"]; len(b) != 3 || b[0] != bobSelf.Role || b[2] != "token-participant" {
		t.Errorf("Bob shown as %v; his client has %s/%s", b, bobSelf.Affiliation, bobSelf.Role)
	}
	if len(roles) != 2 {
		t.Errorf("occupants shown: %v, want Alice and Bob", roles)
	}
	waitFor(t, admin, log, "a countdown of Alice's rights", rowJS("Alice")+`.querySelector('time[data-expires]') !== null`)
	snap(t, admin, "rooms")

	t.Run("set a role", func(t *testing.T) {
		if err := chromedp.Do(admin,
			chromedp.SetValue(chromedp.CSS(row("Bob")+` select`), "moderator"),
			chromedp.Click(chromedp.CSS(row("Bob")+` button[data-action="role"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#confirm[open]`)),
		); err != nil {
			t.Fatal(err)
		}
		snap(t, admin, "confirm")
		if err := chromedp.Do(admin, chromedp.Click(chromedp.CSS(`#confirm-ok`))); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := alice.WaitPresence(wctx, func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/Bob") && p.Type == "" && p.Role == "moderator"
		}); err != nil {
			t.Fatalf("Bob's presence never showed moderator: %v\nconsole:\n%s", err, log)
		}
		waitFor(t, admin, log, "Bob shown as moderator, set by an admin",
			rowJS("Bob")+`?.dataset.role === "moderator" && `+rowJS("Bob")+`.dataset.reason === "set-by-admin"`)
	})

	t.Run("an action without the CSRF token is refused", func(t *testing.T) {
		got := fetchJS(t, admin, `fetch("api/rooms/kick", {method: "POST", headers: {"Content-Type": "application/json"},
			body: JSON.stringify({room: "`+room+`", nick: "Alice"})}).then(r => r.json().then(b => r.status + " " + b.error))`)
		if got != "403 csrf" {
			t.Errorf("kick without the CSRF token: %s", got)
		}
		if _, err := chromedp.Run(admin, chromedp.Evaluate[bool](rowJS("Alice")+` !== null`)); err != nil {
			t.Error(err)
		}
	})

	t.Run("another tenant sees nothing of this one", func(t *testing.T) {
		rival, rlog := signIn(t, "rival", "")
		waitFor(t, rival, rlog, "the rival's first picture", `document.getElementById("rooms-summary").textContent.includes("of 0 rooms")`)
		text, err := chromedp.Run(rival, chromedp.Text(chromedp.CSS("main")))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text, "console-standup") || strings.Contains(text, "Alice") {
			t.Errorf("the rival tenant's console shows this tenant's room:\n%s", text)
		}
		got := fetchJS(t, rival, `fetch("api/session").then(r => r.json()).then(s => fetch("api/rooms/kick", {method: "POST",
			headers: {"Content-Type": "application/json", "X-CSRF-Token": s.csrf}, body: JSON.stringify({room: "`+room+`", nick: "Alice"})}))
			.then(r => r.json().then(b => r.status + " " + b.error))`)
		if got != "403 wrong-tenant" {
			t.Errorf("the rival kicking Alice: %s", got)
		}
		bans := fetchJS(t, rival, `fetch("api/bans").then(r => r.json()).then(b => String(b.total))`)
		if bans != "0" {
			t.Errorf("the rival sees %s bans", bans)
		}
	})

	t.Run("ban a user and see them leave", func(t *testing.T) {
		if err := chromedp.Do(admin,
			chromedp.Click(chromedp.CSS(row("Bob")+` button[data-action="ban"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#confirm[open]`)),
			chromedp.SetValue(chromedp.CSS(`#confirm-reason`), "console test"),
			chromedp.Click(chromedp.CSS(`#confirm-ok`)),
		); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := bob.WaitPresence(wctx, func(p xclient.Presence) bool {
			return strings.EqualFold(p.From, room+"/Bob") && p.Type == "unavailable"
		}); err != nil {
			t.Fatalf("Bob never left: %v\nconsole:\n%s", err, log)
		}
		waitFor(t, admin, log, "Bob gone from the room", rowJS("Bob")+` === null && `+rowJS("Alice")+` !== null`)
		_, _ = chromedp.Run(admin, chromedp.Evaluate[string](`location.hash = "#/bans"`))
		waitFor(t, admin, log, "the ban listed, with its issuer", `[...document.querySelectorAll("#bans tbody tr")].some(tr =>
			tr.dataset.value === "console-bob" && tr.textContent.includes("console:`+prosodytest.Host+`") && tr.textContent.includes("console test"))`)
		snap(t, admin, "bans")
	})

	t.Run("health", func(t *testing.T) {
		_, _ = chromedp.Run(admin, chromedp.Evaluate[string](`location.hash = "#/health"`))
		waitFor(t, admin, log, "the health view", `document.getElementById("health-servers").textContent.includes("connected") &&
			document.querySelectorAll("#health-chart rect").length > 0`)
		snap(t, admin, "health")
	})

	t.Run("at a phone's width", func(t *testing.T) {
		_, _ = chromedp.Run(admin, chromedp.Evaluate[string](`location.hash = "#/rooms"`))
		if err := chromedp.Do(admin, chromedp.EmulateViewport(390, 844)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, admin, log, "the room at a phone's width", rowJS("Alice")+` !== null`)
		wide, err := chromedp.Run(admin, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
		if err != nil {
			t.Fatal(err)
		}
		if wide {
			t.Errorf("the page scrolls sideways at 390 px")
		}
		snap(t, admin, "phone")
	})
}

// mintAdmin mints an admin token of tenant sub for the API and the console.
func mintAdmin(t *testing.T, h *harness, sub string) string {
	t.Helper()
	cmd := exec.Command(h.gavel, "token", "mint", "-secret-env", "GAVEL_CLIENTS_ADMIN_SECRET", "-sub", sub, "-admin", "-ttl", "1h")
	cmd.Env = append(os.Environ(), "GAVEL_CLIENTS_ADMIN_SECRET="+adminSecret)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gavel token mint -admin: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(out.String())
}

// snap saves the tab as name.png in $GAVEL_CONSOLE_SCREENSHOTS, when set.
func snap(t *testing.T, tab context.Context, name string) {
	dir := os.Getenv("GAVEL_CONSOLE_SCREENSHOTS")
	if dir == "" || name == "" {
		return
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
}
