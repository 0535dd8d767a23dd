package component

import "testing"

func TestWithQueuedKnocksTakesOnlyTheKnocksAtTheHead(t *testing.T) {
	r := &room{wake: make(chan struct{}, 1)}
	k := func() *knockReq { return &knockReq{} }
	first, a, b, c := k(), k(), k(), k()
	r.push(event{kind: evKnock, knock: a})
	r.push(event{kind: evKnock, knock: b})
	r.push(event{kind: evPresence})
	r.push(event{kind: evKnock, knock: c})
	got := r.withQueuedKnocks(first)
	if len(got) != 3 || got[0] != first || got[1] != a || got[2] != b {
		t.Fatalf("batch = %v, want first, a, b", got)
	}
	if r.nknocks != 1 || r.queued() != 2 || r.queue[0].kind != evPresence || r.queue[1].knock != c {
		t.Fatalf("left %d knocks, queue %+v; want the presence, then c", r.nknocks, r.queue)
	}
	if !r.nextSaves() {
		t.Error("a presence at the head should defer the save")
	}
	r.next()
	r.next()
	if r.nextSaves() {
		t.Error("an empty queue should not defer the save")
	}
	r.push(event{kind: evShutdown})
	if r.nextSaves() {
		t.Error("a shutdown at the head should not defer the save")
	}
}

func TestWithQueuedKnocksIsBounded(t *testing.T) {
	r := &room{wake: make(chan struct{}, 1)}
	for range maxKnockBatch + 5 {
		r.push(event{kind: evKnock, knock: &knockReq{}})
	}
	if got := r.withQueuedKnocks(&knockReq{}); len(got) != maxKnockBatch {
		t.Fatalf("took %d knocks, want %d", len(got), maxKnockBatch)
	}
	if r.nknocks != 6 {
		t.Fatalf("%d knocks left, want 6", r.nknocks)
	}
}
