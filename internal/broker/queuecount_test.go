package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
)

func TestQueueCountsReadsReadyMessagesAndConsumers(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	ch := env.Channel(t)
	if _, err := ch.QueueDeclare("counted", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c, err := ch.PublishWithDeferredConfirm("", "counted", true, false, amqp.Publishing{Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := c.WaitContext(context.Background()); !ok || err != nil {
			t.Fatalf("publish not confirmed: %v", err)
		}
	}
	d, err := NewDialer(env.Settings(t), "test queue counts")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	counts := func() (int, int) {
		t.Helper()
		m, c, err := d.QueueCounts(ctx, "counted")
		if err != nil {
			t.Fatalf("QueueCounts: %v", err)
		}
		return m, c
	}
	if m, c := counts(); m != 3 || c != 0 {
		t.Fatalf("counts = %d messages, %d consumers; want 3, 0", m, c)
	}

	// A consumer holding one message unacknowledged: that one is no longer
	// ready, and the consumer counts.
	consumer := env.Channel(t)
	if err := consumer.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := consumer.Consume("counted", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-deliveries
	brokertest.WaitFor(t, "2 ready messages and 1 consumer", 30*time.Second, func() bool {
		m, c := counts()
		return m == 2 && c == 1
	})
}

func TestQueueCountsOfAMissingQueue(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	d, err := NewDialer(env.Settings(t), "test queue counts")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = d.QueueCounts(context.Background(), "no-such-queue")
	var ae *amqp.Error
	if !errors.Is(err, ErrQueueNotFound) || !errors.As(err, &ae) || ae.Code != amqp.NotFound {
		t.Fatalf("err = %v, want ErrQueueNotFound carrying the broker's 404", err)
	}

	// The broker closes only the channel: the connection serves the next
	// count.
	conn := env.Dial(t)
	if _, _, err := QueueCountsOn(conn, "no-such-queue"); !errors.Is(err, ErrQueueNotFound) {
		t.Fatalf("QueueCountsOn: err = %v, want ErrQueueNotFound", err)
	}
	ch := env.Channel(t)
	if _, err := ch.QueueDeclare("there", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if m, c, err := QueueCountsOn(conn, "there"); err != nil || m != 0 || c != 0 {
		t.Fatalf("after a 404 on the same connection: %d, %d, %v", m, c, err)
	}
	if conn.IsClosed() {
		t.Error("the 404 closed the connection")
	}
}

func TestQueueCountsHonoursACancelledContext(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	d, err := NewDialer(env.Settings(t), "test queue counts")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := d.QueueCounts(ctx, "any"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestQueueCountsGivesUpOnANodeThatStopsAnswering(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	s := env.Settings(t)
	u, err := url.Parse(s.AMQPURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5672") // amqp.URI leaves the default port out
	}
	u.Host = handshakeOnlyProxy(t, target)
	s.AMQPURLs = []string{u.String()}
	s.Timeout = time.Second
	d, err := NewDialer(s, "test queue counts")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = d.QueueCounts(context.Background(), "any")
	if err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Fatalf("err = %v, want the timeout", err)
	}
}

// handshakeOnlyProxy forwards AMQP connections to target until the client
// sends its first frame on a channel other than 0 (channel.open): that
// frame and everything after it are swallowed, like a node that completed
// the handshake and then froze.
func handshakeOnlyProxy(t *testing.T, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			track(client)
			track(server)
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(client, server) }()
			go func() { defer wg.Done(); forwardUntilChannelFrame(client, server) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

func forwardUntilChannelFrame(client io.Reader, server io.Writer) {
	header := make([]byte, 8) // "AMQP" 0 0 9 1
	if _, err := io.ReadFull(client, header); err != nil {
		return
	}
	if _, err := server.Write(header); err != nil {
		return
	}
	frozen := false
	for {
		// A frame: type (1), channel (2), size (4), payload, end (0xCE).
		head := make([]byte, 7)
		if _, err := io.ReadFull(client, head); err != nil {
			return
		}
		rest := make([]byte, binary.BigEndian.Uint32(head[3:])+1)
		if _, err := io.ReadFull(client, rest); err != nil {
			return
		}
		frozen = frozen || binary.BigEndian.Uint16(head[1:3]) != 0
		if frozen {
			continue
		}
		if _, err := server.Write(append(head, rest...)); err != nil {
			return
		}
	}
}
