package ledger

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

func open(t *testing.T) *Ledger {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := New(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE effects (key TEXT)`); err != nil {
		t.Fatal(err)
	}
	return l
}

func effects(t *testing.T, l *Ledger) int {
	t.Helper()
	var n int
	if err := l.DB().QueryRow(`SELECT count(*) FROM effects`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOnceRunsTheEffectOncePerKey(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	effect := func(key string) func(*sql.Tx) error {
		return func(tx *sql.Tx) error { _, err := tx.Exec(`INSERT INTO effects VALUES (?)`, key); return err }
	}
	for i, tc := range []struct {
		handler, key string
		want         bool
	}{
		{"email", "e1", true},
		{"email", "e1", false}, // redelivery
		{"points", "e1", true}, // another handler, same event
		{"email", "e2", true},
		{"email", "e2", false},
	} {
		got, err := l.Once(ctx, tc.handler, tc.key, effect(tc.key))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if got != tc.want {
			t.Errorf("case %d: Once(%s, %s) applied = %v, want %v", i, tc.handler, tc.key, got, tc.want)
		}
	}
	if n := effects(t, l); n != 3 {
		t.Errorf("effects = %d, want 3", n)
	}
	if seen, _ := l.Seen(ctx, "email", "e1"); !seen {
		t.Error("Seen(email, e1) = false after Once")
	}
	if seen, _ := l.Seen(ctx, "coupon", "e1"); seen {
		t.Error("Seen(coupon, e1) = true, never recorded")
	}
}

func TestOnceRecordsNothingWhenTheEffectFails(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	boom := errors.New("provider down")
	applied, err := l.Once(ctx, "email", "e1", func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO effects VALUES ('e1')`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || applied {
		t.Fatalf("Once = %v, %v; want false, %v", applied, err, boom)
	}
	if n := effects(t, l); n != 0 {
		t.Errorf("effects after a failed attempt = %d, want 0 (rolled back)", n)
	}
	if applied, err := l.Once(ctx, "email", "e1", nil); err != nil || !applied {
		t.Errorf("retry after failure = %v, %v; want applied", applied, err)
	}
}

func TestOnceIsSafeUnderConcurrentRedelivery(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Once(ctx, "email", "same", func(tx *sql.Tx) error {
				_, err := tx.Exec(`INSERT INTO effects VALUES ('same')`)
				return err
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := effects(t, l); n != 1 {
		t.Errorf("effects = %d, want exactly 1", n)
	}
}

// BenchmarkOnce measures a side effect plus its ledger entry, one
// transaction each, on a file database (WAL, synchronous=NORMAL).
func BenchmarkOnce(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l, err := New(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE effects (key TEXT)`); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		key := strconv.Itoa(i)
		if _, err := l.Once(ctx, "email", key, func(tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO effects VALUES (?)`, key)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}
