package jidprep

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gavelxmpp/gavel/internal/prosodytest"
	"github.com/gavelxmpp/gavel/internal/xclient"
)

// probeRunes are characters whose preparation differs from lowercasing:
// full-width and compatibility forms, case folds that change length,
// ignorable characters, combining marks, and right-to-left letters.
var probeRunes = []rune("aZ09-_.[]ｖＩｃ²ⓐⅫ㎒℡ﬀﬅßẞΣσςİıǅÅKµ\u00ad\u200b\u2060\u0301\u0308אب𝐀\u3000ｱ")

// TestAgainstProsody sends joins to rooms with tricky names to a real
// Prosody and checks that, wherever jidprep accepts a name, Prosody names
// the room exactly as jidprep does, and that whatever Prosody refuses,
// jidprep refuses too.
func TestAgainstProsody(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prosody")
	}
	srv, err := prosodytest.Start(t.TempDir(), prosodytest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Register("prober", prosodytest.Host, "pw"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c, err := xclient.Login(ctx, srv.C2SAddr, "prober", prosodytest.Host, "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	names := []string{"[acme]ｖｉｃｔｉｍ", "straße", "ﬀroom", "ΣΟΦΙΑ", "Kelvin\u212a", "İstanbul", "ro\u200bom", "ａ\u3000ｂ", "x\u0301", "Å", "ｓｔａｎｄｕｐ"}
	rng := rand.New(rand.NewPCG(1, 2))
	for len(names) < 150 {
		var b strings.Builder
		for n := 1 + rng.IntN(6); n > 0; n-- {
			b.WriteRune(probeRunes[rng.IntN(len(probeRunes))])
		}
		names = append(names, b.String())
	}
	var agreed, refusedByBoth, refusedByGavelOnly int
	for i, name := range names {
		nick := "p" + strconv.Itoa(i)
		occupant := name + "@" + prosodytest.MUC + "/" + nick
		if err := c.Send(ctx, `<presence to='`+xmlEscape(occupant)+`'><x xmlns='http://jabber.org/protocol/muc'/></presence>`); err != nil {
			t.Fatal(err)
		}
		// Prosody drops a join to an address it cannot prepare without
		// answering; a bounded wait tells that apart from an answer.
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		p, err := c.WaitPresence(pctx, func(p xclient.Presence) bool {
			return strings.HasSuffix(p.From, "/"+nick) && (p.Self() || p.Type == "error")
		})
		pcancel()
		if err != nil && ctx.Err() != nil {
			t.Fatalf("%q: %v", name, err)
		}
		want, prepErr := Bare(name + "@" + prosodytest.MUC)
		if err != nil || p.Type == "error" {
			if prepErr == nil {
				t.Errorf("%q: Prosody refused it (%v, %v), jidprep gave %q", name, err, p.Error, want)
			} else {
				refusedByBoth++
			}
			continue
		}
		server, _, _ := strings.Cut(p.From, "/")
		_ = c.Leave(ctx, server, nick)
		switch {
		case prepErr != nil:
			refusedByGavelOnly++ // allowed: gavel refuses what it cannot map one to one
		case server != want:
			t.Errorf("%q: Prosody named the room %q, jidprep %q", name, server, want)
		default:
			agreed++
		}
	}
	t.Logf("%d names: %d named alike, %d refused by both, %d refused by jidprep only", len(names), agreed, refusedByBoth, refusedByGavelOnly)
	if agreed < len(names)/3 {
		t.Fatalf("only %d names were accepted by both: the probe says too little", agreed)
	}
}

func xmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;")
	return r.Replace(s)
}
