package broker

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
)

func TestDialerFailsOverToTheNextNode(t *testing.T) {
	env := brokertest.New(t)
	s := env.Settings(t)
	dead := "amqp://guest:deadpass@127.0.0.1:1/" + env.VhostPath()
	s.AMQPURLs = append([]string{dead}, s.AMQPURLs...)
	s.Redactor.Add("deadpass")
	d, err := NewDialer(s, "test failover")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := d.Dial(context.Background())
	if err != nil {
		t.Fatalf("dial with one dead node: %v", err)
	}
	defer conn.Close()
	if strings.Contains(d.Node(), ":1/") || strings.Contains(d.Node(), "guest:guest") {
		t.Errorf("node = %s, want the live node, password masked", d.Node())
	}
	// After a failover the next dial starts at the dead node, fails there,
	// and still lands on the live one.
	d.Failover()
	conn2, err := d.Dial(context.Background())
	if err != nil {
		t.Fatalf("dial after failover: %v", err)
	}
	conn2.Close()
}

func TestDialerAllNodesDownIsOperationalAndRedacted(t *testing.T) {
	s, _ := config.Resolve(config.Flags{URLs: []string{"amqp://u:pw-one@127.0.0.1:1/", "amqp://u:pw-one@127.0.0.1:2/"}, Timeout: 2 * time.Second}, func(string) (string, bool) { return "", false }, nil)
	d, _ := NewDialer(s, "test")
	_, err := d.Dial(context.Background())
	if err == nil {
		t.Fatal("want an error")
	}
	if k, _ := fail.KindOf(err); k != fail.Operational {
		t.Errorf("kind = %v", k)
	}
	if strings.Contains(err.Error(), "pw-one") || !strings.Contains(err.Error(), "127.0.0.1:2") {
		t.Errorf("error = %v", err)
	}
}

func TestDialRetryStopsOnAuthFailure(t *testing.T) {
	env := brokertest.New(t)
	s := env.Settings(t)
	u, _ := amqp.ParseURI(env.AMQPURL)
	u.Password = "not-the-password"
	s.AMQPURLs = []string{u.String()}
	d, _ := NewDialer(s, "test")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := d.DialRetry(ctx, DefaultBackoff, nil)
	if k, _ := fail.KindOf(err); k != fail.Auth {
		t.Fatalf("want an auth error at once, got %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("DialRetry kept retrying a credential failure")
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	for n := 0; n < 20; n++ {
		d := b.Delay(n)
		ceiling := b.Initial << min(n, 10)
		if ceiling > b.Max {
			ceiling = b.Max
		}
		if d < ceiling/2 || d > ceiling {
			t.Errorf("Delay(%d) = %s, want within [%s, %s]", n, d, ceiling/2, ceiling)
		}
	}
}

// silentListener accepts connections and never answers, like a frozen node.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestDialerNamesASilentNodeAndTriesTheNext(t *testing.T) {
	silent := silentListener(t)
	s, _ := config.Resolve(config.Flags{URLs: []string{"amqp://u:pw-two@" + silent + "/", "amqp://u:pw-two@127.0.0.1:1/"}, Timeout: 500 * time.Millisecond},
		func(string) (string, bool) { return "", false }, nil)
	d, _ := NewDialer(s, "test")
	start := time.Now()
	// A caller's deadline longer than one attempt: the silent node must
	// not use it all up.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := d.Dial(ctx)
	took := time.Since(start)
	if err == nil {
		t.Fatal("want an error")
	}
	msg := err.Error()
	if !strings.Contains(msg, silent) || !strings.Contains(msg, "no AMQP answer within 500ms") || !strings.Contains(msg, "127.0.0.1:1/") {
		t.Errorf("error = %v; want the silent node named as not answering, and the next node tried", err)
	}
	if strings.Contains(msg, "pw-two") {
		t.Errorf("error shows the password: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("Dial took %s with a 500ms timeout per node", took)
	}
}

func TestDialRetryGivesUpAtStartupOnlyBeforeAConnection(t *testing.T) {
	s, _ := config.Resolve(config.Flags{URLs: []string{"amqp://u:p@127.0.0.1:1/"}, Timeout: time.Second},
		func(string) (string, bool) { return "", false }, nil)
	d, _ := NewDialer(s, "test")
	d.LimitStartup(800 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := d.DialRetry(ctx, Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}, nil)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "no connection within 800ms") {
		t.Fatalf("DialRetry = %v (ctx %v), want it to give up after the startup limit", err, ctx.Err())
	}

	// Once a connection was made, the same dialer keeps retrying.
	d.connected = true
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if _, err := d.DialRetry(short, Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}, nil); short.Err() == nil {
		t.Fatalf("DialRetry after a connection gave up early: %v", err)
	}
}
