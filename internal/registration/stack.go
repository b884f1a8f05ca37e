package registration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// StackConfig is what the sign-up application needs to run.
type StackConfig struct {
	// DB holds the users and the outbox (tables created if missing).
	DB *sql.DB
	// Listen is the API's host:port; port 0 picks a free one.
	Listen string
	// Relay publishes the outbox; Start sets its Store.
	Relay Relay
}

// Stack is the sign-up application as `mqctl serve` ships it: the HTTP API
// storing each registration (user and outbox row in one transaction) and
// the relay publishing the outbox with confirms. `mqctl serve`, `mqctl
// demo` and `mqctl bench register` all run this one stack, so what the
// demo shows and the benchmark measures is what serve does.
type Stack struct {
	// Store is the stack's database of users and outbox rows.
	Store *Store

	addr        net.Addr
	srv         *http.Server
	stopRelay   context.CancelFunc
	tasks       tasks
	stopOnce    sync.Once
	stopErr     error
	done        chan struct{}
	signalEnded sync.Once
}

// ListenError means the API could not listen on its address.
type ListenError struct {
	Addr string
	Err  error
}

func (e *ListenError) Error() string { return "listen on " + e.Addr + ": " + e.Err.Error() }

// Unwrap returns the listener's error.
func (e *ListenError) Unwrap() error { return e.Err }

// StartStack creates the tables, listens, and starts serving and
// relaying. Both run until Stop, whatever becomes of ctx (its values are
// kept): the caller decides when to stop, so it can stop in order.
func StartStack(ctx context.Context, cfg StackConfig) (*Stack, error) {
	store, err := NewStore(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, &ListenError{Addr: cfg.Listen, Err: err}
	}
	health := NewRelayHealth()
	s := &Stack{
		Store: store,
		addr:  ln.Addr(),
		srv:   &http.Server{Handler: Handler(store, health), ReadHeaderTimeout: 5 * time.Second},
		done:  make(chan struct{}),
	}
	relay := cfg.Relay
	relay.Store = store
	onEvent := relay.OnEvent
	relay.OnEvent = func(e RelayEvent) {
		health.Observe(e)
		if onEvent != nil {
			onEvent(e)
		}
	}
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	s.stopRelay = stopRelay
	s.tasks.run(func() error {
		defer s.ended()
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	s.tasks.run(func() error {
		defer s.ended()
		return relay.Run(relayCtx)
	})
	return s, nil
}

// ended marks that the server or the relay stopped, on its own or not.
func (s *Stack) ended() { s.signalEnded.Do(func() { close(s.done) }) }

// Addr is the API's host:port.
func (s *Stack) Addr() string { return s.addr.String() }

// URL is the API's base URL.
func (s *Stack) URL() string { return "http://" + s.Addr() }

// Done is closed when the server or the relay has stopped: after Stop, or
// on its own when it failed (Stop then returns why).
func (s *Stack) Done() <-chan struct{} { return s.done }

// Drain waits until the relay has published every outbox row, or ctx
// ends. Registrations arriving meanwhile are waited for too.
func (s *Stack) Drain(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := s.Store.Stats(ctx)
		if err != nil {
			return err
		}
		if st.Pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d outbox rows still unpublished: %w", st.Pending, ctx.Err())
		case <-s.done:
			return errors.New("the relay stopped with rows still in the outbox")
		case <-tick.C:
		}
	}
}

// Stop stops accepting requests and lets those in flight finish (up to
// 10 s), then stops the relay, which records what the broker confirmed
// before it returns. It returns why the server or the relay failed, if
// one did. Calling it again returns the same.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
		s.stopRelay()
		s.stopErr = s.tasks.wait()
	})
	return s.stopErr
}

// tasks runs goroutines and collects their errors: the owner of a
// tasks waits for every one it started.
type tasks struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func (t *tasks) run(f func() error) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		if err := f(); err != nil {
			t.mu.Lock()
			t.err = errors.Join(t.err, err)
			t.mu.Unlock()
		}
	}()
}

// wait waits for every task and returns their errors joined.
func (t *tasks) wait() error {
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}
