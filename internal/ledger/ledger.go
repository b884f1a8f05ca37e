// Package ledger is an idempotency ledger in an embedded SQLite database
// (pure Go, no cgo, no server): it remembers which (handler, key) pairs
// have had their side effect, and records a side effect and its ledger
// entry in one transaction, so a redelivered message never produces a
// second side effect.
package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Open opens (creating if needed) a SQLite database file with settings fit
// for several processes sharing it: WAL journal, a busy timeout, and
// foreign keys on. Use ":memory:" only in tests of a single connection.
func Open(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// One writer at a time is all SQLite does anyway; a single connection
	// turns lock contention inside this process into a queue.
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w; is the directory writable?", path, err)
	}
	return db, nil
}

// Ledger records processed (handler, key) pairs in a SQLite table.
type Ledger struct {
	db *sql.DB
}

// New creates the ledger table in db if it is missing.
func New(ctx context.Context, db *sql.DB) (*Ledger, error) {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS ledger (
		handler    TEXT NOT NULL,
		key        TEXT NOT NULL,
		done_at    TEXT NOT NULL,
		PRIMARY KEY (handler, key)
	)`)
	if err != nil {
		return nil, fmt.Errorf("create ledger table: %w", err)
	}
	return &Ledger{db: db}, nil
}

// DB is the database the ledger lives in, for side effects that share its
// transactions.
func (l *Ledger) DB() *sql.DB { return l.db }

// Seen reports whether handler already recorded key.
func (l *Ledger) Seen(ctx context.Context, handler, key string) (bool, error) {
	var one int
	err := l.db.QueryRowContext(ctx, `SELECT 1 FROM ledger WHERE handler = ? AND key = ?`, handler, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read ledger for %s/%s: %w", handler, key, err)
	}
	return true, nil
}

// Once runs effect and records (handler, key) in one transaction, unless
// the pair is already recorded; applied says whether effect ran and
// committed. When effect fails, nothing is recorded and its error returned.
func (l *Ledger) Once(ctx context.Context, handler, key string, effect func(*sql.Tx) error) (applied bool, err error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin ledger transaction: %w", err)
	}
	defer func() {
		if !applied {
			_ = tx.Rollback()
		}
	}()
	res, err := tx.ExecContext(ctx, `INSERT INTO ledger (handler, key, done_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		handler, key, time.Now().UTC().Format(time.RFC3339Nano))
	if err != nil {
		return false, fmt.Errorf("record %s/%s in ledger: %w", handler, key, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	if effect != nil {
		if err := effect(tx); err != nil {
			return false, err
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit %s/%s: %w", handler, key, err)
	}
	return true, nil
}
