package store_test

import (
	"testing"

	"github.com/gavelxmpp/gavel/store"
	"github.com/gavelxmpp/gavel/store/storetest"
)

func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, storetest.Backend{Open: func(t *testing.T) store.Store {
		m := store.NewMemory()
		t.Cleanup(func() { _ = m.Close() })
		return m
	}})
}

func TestConformanceBolt(t *testing.T) {
	open := func(t *testing.T, dir string) store.Store {
		t.Helper()
		b, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T) store.Store { return open(t, t.TempDir()) },
		Reopen: func(t *testing.T, s store.Store) store.Store {
			dir := s.(*store.Bolt).Path()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, dir[:len(dir)-len(store.FileName)-1])
		},
	})
}
