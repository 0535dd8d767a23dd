package auth

import (
	"sync"
	"sync/atomic"
)

// cacheShards is the number of independently locked parts of the
// verified-token cache; a power of two.
const cacheShards = 16

// tokenCache is a bounded, sharded LRU of verified tokens, keyed by a
// maphash of the token text. An entry keeps the token itself, so a hash
// collision is a miss, never a wrong hit. Entries are immutable once added.
type tokenCache struct {
	shards [cacheShards]cacheShard
	// gen increases on every Forget; a verification that started before a
	// Forget does not add its result, so a banned token cannot slip back in.
	gen atomic.Uint64
}

type cacheShard struct {
	mu     sync.Mutex
	max    int
	byKey  map[uint64]*cacheEntry
	byHash map[[32]byte]*cacheEntry // chains entries of equal TokenHash via sameHash
	head   cacheEntry               // sentinel of the LRU ring: head.next is the newest
	_      [40]byte                 // keep shards on separate cache lines
}

type cacheEntry struct {
	key        uint64
	token      string
	claims     *Claims
	cfg        *tenantConfig
	src        keySource // which kind of key verified the token
	keyGen     uint64    // cfg.keyGen() when the verification started
	prev, next *cacheEntry
	sameHash   *cacheEntry // next entry with the same TokenHash (re-signed token)
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{}
	per := max(1, (size+cacheShards-1)/cacheShards)
	for i := range c.shards {
		s := &c.shards[i]
		s.max = per
		s.byKey = make(map[uint64]*cacheEntry)
		s.byHash = make(map[[32]byte]*cacheEntry)
		s.head.prev, s.head.next = &s.head, &s.head
	}
	return c
}

func (c *tokenCache) shard(key uint64) *cacheShard { return &c.shards[key>>60&(cacheShards-1)] }

// get returns the entry for token, or nil, and marks it recently used.
func (c *tokenCache) get(key uint64, token string) *cacheEntry {
	s := c.shard(key)
	s.mu.Lock()
	e := s.byKey[key]
	if e == nil || e.token != token {
		s.mu.Unlock()
		return nil
	}
	if s.head.next != e {
		s.unlink(e)
		s.pushFront(e)
	}
	s.mu.Unlock()
	return e
}

// add stores an entry unless a Forget happened since gen was read.
func (c *tokenCache) add(key uint64, token string, claims *Claims, cfg *tenantConfig, gen uint64, src keySource, keyGen uint64) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if old := s.byKey[key]; old != nil {
		s.remove(old)
	}
	e := &cacheEntry{key: key, token: token, claims: claims, cfg: cfg, src: src, keyGen: keyGen}
	s.byKey[key] = e
	e.sameHash = s.byHash[claims.TokenHash]
	s.byHash[claims.TokenHash] = e
	s.pushFront(e)
	for len(s.byKey) > s.max {
		s.remove(s.head.prev)
	}
}

// stillKeyed reports whether the key that verified e still stands: the
// tenant's key sets have not lost a key since (keyGen is cfg.keyGen() now),
// and a key-server key is still fresh, so that a key the server no longer
// serves stops admitting tokens within KeyTTL, as it would uncached.
func (e *cacheEntry) stillKeyed(keyGen uint64) bool {
	if e.keyGen != keyGen {
		return false
	}
	return e.src != fromKeyServer || e.cfg.keyServer.fresh(e.claims.KeyID)
}

// drop drops the entry for key if it is still e.
func (c *tokenCache) drop(e *cacheEntry) {
	s := c.shard(e.key)
	s.mu.Lock()
	if s.byKey[e.key] == e {
		s.remove(e)
	}
	s.mu.Unlock()
}

// forget drops every token whose TokenHash is h, wherever it is.
func (c *tokenCache) forget(h [32]byte) {
	c.gen.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for s.byHash[h] != nil {
			s.remove(s.byHash[h])
		}
		s.mu.Unlock()
	}
}

// len counts the entries (tests).
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.byKey)
		s.mu.Unlock()
	}
	return n
}

func (s *cacheShard) remove(e *cacheEntry) {
	s.unlink(e)
	delete(s.byKey, e.key)
	h := e.claims.TokenHash
	if head := s.byHash[h]; head == e {
		if e.sameHash == nil {
			delete(s.byHash, h)
		} else {
			s.byHash[h] = e.sameHash
		}
	} else {
		for p := head; p != nil; p = p.sameHash {
			if p.sameHash == e {
				p.sameHash = e.sameHash
				break
			}
		}
	}
	e.sameHash = nil
}

func (s *cacheShard) unlink(e *cacheEntry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (s *cacheShard) pushFront(e *cacheEntry) {
	e.prev = &s.head
	e.next = s.head.next
	s.head.next.prev = e
	s.head.next = e
}
