package component

// This file lets a room's worker take its queued work in batches, so that
// what costs a round trip or a disk write is paid once for many events:
// knocks waiting one behind the other are decided together (one store
// write before their grants, all grants in flight at once, then every
// answer), instead of one knock waiting for the previous one's grant.

// maxKnockBatch bounds how many queued knocks one decision takes.
const maxKnockBatch = 64

// withQueuedKnocks returns first followed by the knocks queued right
// behind it (up to maxKnockBatch in all), taking them from the queue. Only
// batchable knocks at the head of the queue are taken: an event between two
// knocks, or a knock with a path of its own, keeps its place.
func (r *room) withQueuedKnocks(first *knockReq) []*knockReq {
	ks := []*knockReq{first}
	r.qmu.Lock()
	defer r.qmu.Unlock()
	n := 0
	for n < len(r.queue) && len(ks) < maxKnockBatch && r.queue[n].kind == evKnock && batchable(r.queue[n].knock) {
		ks = append(ks, r.queue[n].knock)
		r.queue[n] = event{}
		n++
	}
	r.nknocks -= n
	r.queue = r.queue[n:]
	if len(r.queue) == 0 {
		r.queue = nil
	}
	return ks
}

// batchable reports whether a queued knock may join a batch: only a knock
// that onKnock would hand straight to decideAll (a knock with a path of its
// own there, such as the bridge's on main, must not).
func batchable(k *knockReq) bool {
	// A bridge request is answered through the bridge (bridgeKnock), not
	// as a plain knock.
	return k != nil && !k.bridge
}

// maxUnsaved bounds how many events a busy room handles between two saves.
const maxUnsaved = 32

// saveSoon saves the room's state after an event, unless more events wait
// in the queue: then the save is left to the last of them (at most
// maxUnsaved events later), so a burst of presences costs one store write
// instead of one each. Only a knock or a presence at the head of the queue
// defers the save: each ends in saveSoon again, while anything else (a
// disconnect, a shutdown, a command) finds the state stored. Grants never wait for it: perform and decideAll
// save before anything is sent or answered.
func (r *room) saveSoon() {
	if r.unsaved < maxUnsaved && r.nextSaves() {
		r.unsaved++
		return
	}
	r.unsaved = 0
	r.save()
}

// nextSaves reports whether the event at the head of the queue is a knock
// or a presence.
func (r *room) nextSaves() bool {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	return len(r.queue) > 0 && (r.queue[0].kind == evKnock || r.queue[0].kind == evPresence)
}
