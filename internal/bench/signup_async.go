package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	_ "modernc.org/sqlite" // pure-Go SQLite driver "sqlite"

	"github.com/mqctl/mqctl/internal/broker"
)

// AsyncSignup is the asynchronous sign-up handler the register benchmark
// measures: it stores the user and an outbox row in one SQLite
// transaction, publishes the user.registered event with a confirm, marks
// the outbox row sent and answers 201. A failed publish still answers 201:
// the row stays in the outbox for a relay to send later. It is
// self-contained so that `mqctl serve`'s real handler can replace it.
type AsyncSignup struct {
	DB        *sql.DB
	Publisher *broker.Publisher
	Exchange  string
	// PublishTimeout bounds the wait for the confirm.
	PublishTimeout time.Duration
}

// SignupRequest is the body of POST /register.
type SignupRequest struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	VIP   bool   `json:"vip"`
}

// UserRegistered is the event published for each sign-up.
type UserRegistered struct {
	EventID      string    `json:"event_id"`
	UserID       string    `json:"user_id"`
	Name         string    `json:"name"`
	Email        string    `json:"email"`
	VIP          bool      `json:"vip"`
	RegisteredAt time.Time `json:"registered_at"`
}

// RoutingKey is user.registered, or user.registered.vip for VIP sign-ups.
func (e UserRegistered) RoutingKey() string {
	if e.VIP {
		return "user.registered.vip"
	}
	return "user.registered"
}

// OpenSignupDB opens (creating) the SQLite database in dir with the users
// and outbox tables. WAL with synchronous=NORMAL: a commit survives a crash
// of the process, not necessarily a power loss. One connection: SQLite
// allows one writer at a time, and queueing in Go is cheaper than
// SQLITE_BUSY retries.
func OpenSignupDB(dir string) (*sql.DB, error) {
	dsn := "file:" + filepath.Join(dir, "signup.db") + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sign-up database: %w", err)
	}
	db.SetMaxOpenConns(1)
	const schema = `
CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE,
  vip INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, routing_key TEXT NOT NULL,
  payload BLOB NOT NULL, created_at TEXT NOT NULL, sent_at TEXT);`
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("create sign-up tables: %w", err)
	}
	return db, nil
}

// ServeHTTP handles POST /register.
func (a *AsyncSignup) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeSignup(w, r)
	if !ok {
		return
	}
	now := time.Now().UTC()
	ev := UserRegistered{EventID: randomHex(16), UserID: randomHex(16), Name: req.Name, Email: req.Email, VIP: req.VIP, RegisteredAt: now}
	payload, _ := json.Marshal(ev)
	if err := a.store(r.Context(), ev, payload); err != nil {
		status := http.StatusInternalServerError
		if strings.Contains(err.Error(), "UNIQUE") {
			status = http.StatusConflict
		}
		http.Error(w, err.Error(), status)
		return
	}
	if err := a.publish(r.Context(), ev, payload); err == nil {
		_, _ = a.DB.ExecContext(r.Context(), `UPDATE outbox SET sent_at = ? WHERE id = ?`, time.Now().UTC().Format(time.RFC3339Nano), ev.EventID)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = fmt.Fprintf(w, `{"id":%q}`, ev.UserID)
}

func (a *AsyncSignup) store(ctx context.Context, ev UserRegistered, payload []byte) error {
	tx, err := a.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	at := ev.RegisteredAt.Format(time.RFC3339Nano)
	if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, name, email, vip, created_at) VALUES (?, ?, ?, ?, ?)`, ev.UserID, ev.Name, ev.Email, ev.VIP, at); err != nil {
		return fmt.Errorf("store user: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, user_id, routing_key, payload, created_at) VALUES (?, ?, ?, ?, ?)`, ev.EventID, ev.UserID, ev.RoutingKey(), payload, at); err != nil {
		return fmt.Errorf("store outbox row: %w", err)
	}
	return tx.Commit()
}

func (a *AsyncSignup) publish(ctx context.Context, ev UserRegistered, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, a.PublishTimeout)
	defer cancel()
	return a.Publisher.PublishAndWait(ctx, a.Exchange, ev.RoutingKey(), amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    ev.EventID,
		Timestamp:    ev.RegisteredAt,
		Type:         "user.registered",
		Body:         payload,
	})
}

// OutboxUnsent counts outbox rows not yet confirmed by the broker.
func OutboxUnsent(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL`).Scan(&n)
	return n, err
}

func decodeSignup(w http.ResponseWriter, r *http.Request) (SignupRequest, bool) {
	var req SignupRequest
	if r.Method != http.MethodPost {
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return req, false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "invalid JSON body: "+err.Error(), http.StatusBadRequest)
		return req, false
	}
	if req.Name == "" || !strings.Contains(req.Email, "@") {
		http.Error(w, "name and a valid email are required", http.StatusBadRequest)
		return req, false
	}
	return req, true
}

// errProviderDown is what a provider that is down ends with: it hangs
// until the caller gives up, as a dead upstream behind a load balancer does.
var errProviderDown = errors.New("provider did not answer")
