package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// benchCountModule counts, inside Prosody, the stanzas Prosody routes to
// gavel's component (bench_count_component): the presences it gets as an
// occupant, the bridge's occupant reports (messages) and join requests
// and answers (IQs). It hooks the component host's stanza events ahead
// of mod_component and only counts; the counts are read with the admin
// shell (env.toGavel) before and after each round. Written by gavel-bench,
// loaded globally; the first host to load it does the counting.
const benchCountModule = `-- written by gavel-bench: counts the stanzas routed to gavel's component
local component = module:get_option_string("bench_count_component");
if not component or prosody.gavel_bench_to_gavel then return; end
local counts = { presence = 0, message = 0, iq = 0 };
prosody.gavel_bench_to_gavel = counts;
local attached = false;
local function attach(host)
	if attached or host ~= component or not prosody.hosts[host] then return; end
	attached = true;
	local events = prosody.hosts[host].events;
	for _, name in ipairs({ "presence", "message", "iq" }) do
		local function count() counts[name] = counts[name] + 1; end
		for _, to in ipairs({ "/full", "/bare", "/host" }) do
			events.add_handler(name .. to, count, 1000);
		end
	end
end
attach(component);
module:hook_global("host-activated", attach);
`

// inbound is what Prosody routed to gavel during a round.
type inbound struct {
	Presences int `json:"presences"`
	Messages  int `json:"messages"`
	IQs       int `json:"iqs"`
}

// to returns the stanzas counted from i to j, or nil if either is unknown.
func (i *inbound) to(j *inbound) *inbound {
	if i == nil || j == nil {
		return nil
	}
	return &inbound{Presences: j.Presences - i.Presences, Messages: j.Messages - i.Messages, IQs: j.IQs - i.IQs}
}

// toGavel reads the counts of benchCountModule (nil where it is not
// loaded, or the read failed).
func (e *env) toGavel(ctx context.Context) *inbound {
	if !e.countGavel {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := e.srv.ProsodyCtl(cctx, "shell",
		`>(function() local c = prosody.gavel_bench_to_gavel; if not c then return "none"; end; return ("%d/%d/%d"):format(c.presence, c.message, c.iq); end)()`)
	if err != nil {
		logf("counting stanzas to gavel: %v: %s", err, strings.TrimSpace(string(out)))
		return nil
	}
	var in inbound
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "Result: %d/%d/%d", &in.Presences, &in.Messages, &in.IQs); err != nil {
		logf("counting stanzas to gavel: unexpected answer %q", strings.TrimSpace(string(out)))
		return nil
	}
	return &in
}
