package registration

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Store keeps users and the outbox of their events in SQLite.
type Store struct {
	db   *sql.DB
	wake chan struct{}
}

// ErrDuplicateEmail means a user with that e-mail address exists.
var ErrDuplicateEmail = errors.New("a user with this e-mail address is already registered")

// NewStore creates the tables in db if they are missing.
func NewStore(ctx context.Context, db *sql.DB) (*Store, error) {
	_, err := db.ExecContext(ctx, `
CREATE TABLE IF NOT EXISTS users (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	email      TEXT NOT NULL UNIQUE,
	vip        INTEGER NOT NULL,
	created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id    TEXT NOT NULL UNIQUE,
	routing_key TEXT NOT NULL,
	body        BLOB NOT NULL,
	created_at  TEXT NOT NULL,
	sent_at     TEXT,
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE sent_at IS NULL;`)
	if err != nil {
		return nil, fmt.Errorf("create registration tables: %w", err)
	}
	return &Store{db: db, wake: make(chan struct{}, 1)}, nil
}

// Wake is signalled after each registration, so the relay need not poll.
func (s *Store) Wake() <-chan struct{} { return s.wake }

// Register stores the user and its event in one transaction and returns
// the event. The event is published later by the relay.
func (s *Store) Register(ctx context.Context, name, email string, vip bool) (Event, error) {
	e := Event{EventID: NewID(), UserID: NewID(), Name: name, Email: email, VIP: vip, RegisteredAt: time.Now().UTC()}
	body, err := json.Marshal(e)
	if err != nil {
		return e, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return e, fmt.Errorf("begin registration: %w", err)
	}
	defer tx.Rollback()
	now := e.RegisteredAt.Format(time.RFC3339Nano)
	if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, name, email, vip, created_at) VALUES (?, ?, ?, ?, ?)`,
		e.UserID, name, email, vip, now); err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return e, ErrDuplicateEmail
		}
		return e, fmt.Errorf("store user: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (event_id, routing_key, body, created_at) VALUES (?, ?, ?, ?)`,
		e.EventID, e.RoutingKey(), body, now); err != nil {
		return e, fmt.Errorf("store outbox row: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return e, fmt.Errorf("commit registration: %w", err)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return e, nil
}

// OutboxRow is an event waiting to be published.
type OutboxRow struct {
	Seq        int64
	EventID    string
	RoutingKey string
	Body       []byte
}

// Pending returns up to limit unsent outbox rows, oldest first.
func (s *Store) Pending(ctx context.Context, limit int) ([]OutboxRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, event_id, routing_key, body FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxRow
	for rows.Next() {
		var r OutboxRow
		if err := rows.Scan(&r.Seq, &r.EventID, &r.RoutingKey, &r.Body); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// MarkSent records that the broker confirmed these rows.
func (s *Store) MarkSent(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mark outbox rows sent: %w", err)
	}
	defer tx.Rollback()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for _, seq := range seqs {
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = NULL WHERE seq = ?`, now, seq); err != nil {
			return fmt.Errorf("mark outbox row %d sent: %w", seq, err)
		}
	}
	return tx.Commit()
}

// MarkFailed records a failed publish attempt of a row, for humans.
func (s *Store) MarkFailed(ctx context.Context, seq int64, cause error) error {
	_, err := s.db.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?`, cause.Error(), seq)
	return err
}

// OutboxStats counts the outbox.
type OutboxStats struct {
	Users   int `json:"users"`
	Pending int `json:"outbox_pending"`
	Sent    int `json:"outbox_sent"`
}

// Stats counts users and outbox rows.
func (s *Store) Stats(ctx context.Context) (OutboxStats, error) {
	var st OutboxStats
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM users),
		(SELECT count(*) FROM outbox WHERE sent_at IS NULL),
		(SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL)`).Scan(&st.Users, &st.Pending, &st.Sent)
	if err != nil {
		return st, fmt.Errorf("count outbox: %w", err)
	}
	return st, nil
}

// User is a registered user.
type User struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	VIP   bool   `json:"vip"`
}

// Users lists every registered user, oldest first.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, email, vip FROM users ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		if err := rows.Scan(&u.ID, &u.Name, &u.Email, &u.VIP); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
