package registration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/examples"
	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/ledger"
	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/topology"
	"github.com/mqctl/mqctl/internal/worker"
)

// Narrator tells the demo's story; the CLI renders it.
type Narrator interface {
	// Step starts a numbered step.
	Step(title string)
	// Say prints a line of explanation or a figure.
	Say(format string, a ...any)
	// Command shows the standalone command equivalent to what just happened.
	Command(cmd string)
}

// DemoConfig is what the demo needs.
type DemoConfig struct {
	// Dialer connects to the demo's vhost.
	Dialer *broker.Dialer
	// Vhost is the demo's vhost and Topology the management API the demo
	// topology is applied through (as by `mqctl topology apply`).
	Vhost    string
	Topology topology.Broker
	// Dir holds the demo's SQLite files.
	Dir string
	// Users is how many sign-ups per phase.
	Users int
	// EmailLatency is the healthy e-mail provider's latency.
	EmailLatency time.Duration
	// Retry is the demo's retry policy for every side effect (short
	// backoffs): MaxAttempts and Backoff replace the example file's.
	Retry pattern.Retry
}

// PhaseLatency is the sign-up latency seen by clients in one phase.
type PhaseLatency struct {
	Phase   string  `json:"phase"`
	Signups int     `json:"signups"`
	P50ms   float64 `json:"p50_ms"`
	P95ms   float64 `json:"p95_ms"`
	MaxMs   float64 `json:"max_ms"`
}

// UserEffects is how often each side effect happened for one user.
type UserEffects struct {
	UserID  string `json:"user_id"`
	Name    string `json:"name"`
	VIP     bool   `json:"vip"`
	Emails  int    `json:"emails"`
	Points  int    `json:"points"`
	Coupons int    `json:"coupons"`
	OK      bool   `json:"ok"`
}

// DemoReport is the demo's outcome.
type DemoReport struct {
	Latency      []PhaseLatency `json:"latency"`
	Retried      int64          `json:"retried"`
	DeadLettered int64          `json:"dead_lettered"`
	Replayed     int            `json:"replayed"`
	Users        []UserEffects  `json:"users"`
	OK           bool           `json:"ok"`
}

// ErrDemoCheckFailed means a user did not get exactly the side effects due.
var ErrDemoCheckFailed = errors.New("some users did not get exactly one e-mail, one points grant and (VIPs) one coupon")

// RunDemo runs the registration story against the (fresh) vhost the
// dialer points at: topology, API, three workers, healthy sign-ups, a
// broken e-mail provider, the DLQ replayed after the fix, and the final
// exactly-once check.
func RunDemo(ctx context.Context, cfg DemoConfig, say Narrator) (DemoReport, error) {
	var rep DemoReport
	file, err := Topology(cfg.Vhost, cfg.Retry)
	if err != nil {
		return rep, err
	}
	policies, err := Policies(file)
	if err != nil {
		return rep, err
	}
	backoff := make([]string, len(cfg.Retry.Backoff))
	for i, d := range cfg.Retry.Backoff {
		backoff[i] = d.String()
	}

	say.Step("Declare the topology: exchange user.events, queues email, points, coupon, each with delay queues and a DLQ")
	applied, err := ApplyTopology(ctx, cfg.Topology, file)
	if err != nil {
		return rep, err
	}
	say.Say("applied %d objects from %s", applied.Applied, examples.RegistrationTopologyPath)
	say.Say("retry: %d attempts, backoff %s (short, for the demo; the example file uses 5s,30s,2m)", cfg.Retry.MaxAttempts, strings.Join(backoff, ","))
	say.Command("mqctl topology apply -f " + examples.RegistrationTopologyPath)

	say.Step("Start the sign-up API and the three workers")
	db, err := ledger.Open(filepath.Join(cfg.Dir, "registration.db"))
	if err != nil {
		return rep, err
	}
	defer db.Close()
	store, err := NewStore(ctx, db)
	if err != nil {
		return rep, err
	}
	l, err := ledger.New(ctx, db)
	if err != nil {
		return rep, err
	}
	fx, err := NewEffects(ctx, l)
	if err != nil {
		return rep, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return rep, fmt.Errorf("listen for the demo API: %w", err)
	}
	srv := &http.Server{Handler: Handler(store), ReadHeaderTimeout: 5 * time.Second}
	runCtx, stopAll := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	var bgErr error
	var bgMu sync.Mutex
	goRun := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				bgMu.Lock()
				bgErr = errors.Join(bgErr, err)
				bgMu.Unlock()
			}
		}()
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		stopAll()
		wg.Wait()
	}()
	goRun(func() error { return srv.Serve(ln) })
	goRun(func() error {
		return (&Relay{Store: store, Dialer: cfg.Dialer, Poll: 200 * time.Millisecond}).Run(runCtx)
	})
	providers := map[string]*Provider{
		Email:  NewProvider(cfg.EmailLatency, 0, false),
		Points: NewProvider(cfg.EmailLatency/3, 0, false),
		Coupon: NewProvider(cfg.EmailLatency/3, 0, false),
	}
	var retried, dead atomic.Int64
	for _, e := range SideEffects {
		h, err := fx.Handler(e, providers[e])
		if err != nil {
			return rep, err
		}
		goRun(func() error {
			return worker.Run(runCtx, worker.Config{
				Queue: e, Retry: policies[e], Prefetch: 10, Dialer: cfg.Dialer, Handler: h,
				OnEvent: func(ev worker.Event) {
					switch ev.Kind {
					case worker.Retried:
						retried.Add(1)
					case worker.DeadLettered:
						dead.Add(1)
					}
				},
			})
		})
	}
	base := "http://" + ln.Addr().String()
	say.Say("API on %s; e-mail provider latency %s, points and coupon %s", base, cfg.EmailLatency, cfg.EmailLatency/3)
	say.Command("mqctl serve --listen " + ln.Addr().String())
	say.Command(fmt.Sprintf("mqctl consume email --latency %s --max-attempts %d --backoff %s", cfg.EmailLatency, policies[Email].MaxAttempts, strings.Join(backoff, ",")))
	say.Command(fmt.Sprintf("mqctl consume points --latency %s", cfg.EmailLatency/3))
	say.Command(fmt.Sprintf("mqctl consume coupon --latency %s", cfg.EmailLatency/3))

	client := &http.Client{Timeout: 10 * time.Second}
	users := map[string]bool{}
	signup := func(phase string, from int) (PhaseLatency, []string, error) {
		var lat []time.Duration
		var ids []string
		for i := from; i < from+cfg.Users; i++ {
			vip := i%4 == 0
			body := fmt.Sprintf(`{"name":"user %d","email":"user%d@example.com","vip":%v}`, i+1, i+1, vip)
			t0 := time.Now()
			resp, err := client.Post(base+"/register", "application/json", strings.NewReader(body))
			if err != nil {
				return PhaseLatency{}, nil, fmt.Errorf("sign up user %d: %w", i+1, err)
			}
			var out RegisterResponse
			err = decodeJSON(resp, &out)
			lat = append(lat, time.Since(t0))
			if err != nil || resp.StatusCode != http.StatusCreated {
				return PhaseLatency{}, nil, fmt.Errorf("sign up user %d: HTTP %d %v", i+1, resp.StatusCode, err)
			}
			users[out.UserID] = vip
			ids = append(ids, out.UserID)
		}
		return latencyOf(phase, lat), ids, nil
	}
	waitEffects := func(what string, within time.Duration, done func(Tally) bool) error {
		deadline := time.Now().Add(within)
		for {
			t, err := fx.Count(ctx)
			if err != nil {
				return err
			}
			if done(t) {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("demo: %s did not happen within %s; is the broker healthy? (`mqctl doctor`)", what, within)
			}
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return err
			}
		}
	}

	say.Step(fmt.Sprintf("Sign up %d users with every provider healthy", cfg.Users))
	lat, ids, err := signup("healthy", 0)
	if err != nil {
		return rep, err
	}
	rep.Latency = append(rep.Latency, lat)
	say.Say("sign-up latency: p50 %.1f ms, p95 %.1f ms, max %.1f ms (a synchronous chain of the three providers would add at least %s each)",
		lat.P50ms, lat.P95ms, lat.MaxMs, cfg.EmailLatency+2*(cfg.EmailLatency/3))
	if err := waitEffects("the side effects of the first sign-ups", time.Minute, func(t Tally) bool {
		vips := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !users[id] })
		return allHave(t, ids, Email) && allHave(t, ids, Points) && allHave(t, vips, Coupon)
	}); err != nil {
		return rep, err
	}
	say.Say("all %d welcome e-mails sent, points granted, VIP coupons issued", len(ids))

	say.Step("Break the e-mail provider and sign up more users")
	providers[Email].SetDown(true)
	say.Command(fmt.Sprintf("mqctl consume email --down --max-attempts %d --backoff %s", cfg.Retry.MaxAttempts, strings.Join(backoff, ",")))
	lat, ids2, err := signup("e-mail provider down", cfg.Users)
	if err != nil {
		return rep, err
	}
	rep.Latency = append(rep.Latency, lat)
	say.Say("sign-up latency: p50 %.1f ms, p95 %.1f ms, max %.1f ms: unchanged, the broken provider is not in the request path", lat.P50ms, lat.P95ms, lat.MaxMs)
	say.Say("e-mails are retried after %s, then dead-lettered to email.dlq after attempt %d…", strings.Join(backoff, ", "), cfg.Retry.MaxAttempts)
	deadline := time.Now().Add(2 * time.Minute)
	watch := []string{Email}
	for i := 1; i <= cfg.Retry.Steps(); i++ {
		watch = append(watch, pattern.DelayQueue(Email, i))
	}
	watch = append(watch, "email.dlq")
	lastShown := time.Time{}
	for {
		depths := make([]string, len(watch))
		n := 0
		for i, q := range watch {
			d, err := demoDepth(ctx, cfg.Dialer, q)
			if err != nil {
				return rep, err
			}
			depths[i] = fmt.Sprintf("%s %d", q, d)
			n = d
		}
		if n >= len(ids2) || time.Since(lastShown) >= time.Second {
			say.Say("  %s", strings.Join(depths, " · "))
			lastShown = time.Now()
		}
		if n >= len(ids2) {
			break
		}
		if time.Now().After(deadline) {
			return rep, fmt.Errorf("demo: only %d of %d e-mails reached email.dlq within 2m", n, len(ids2))
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return rep, err
		}
	}
	if err := waitEffects("points for the new users", time.Minute, func(t Tally) bool { return allHave(t, ids2, Points) }); err != nil {
		return rep, err
	}
	say.Say("%d retries so far; %d e-mails in email.dlq; points and coupons for the new users were not held up", retried.Load(), len(ids2))
	say.Command("mqctl backlog 'email*'")

	say.Step("Fix the provider, inspect the DLQ and replay it")
	providers[Email].SetDown(false)
	say.Command(fmt.Sprintf("mqctl consume email --latency %s", cfg.EmailLatency))
	reasons, err := demoPeek(ctx, cfg.Dialer, policies[Email].DLQ)
	if err != nil {
		return rep, err
	}
	for r, n := range reasons {
		say.Say("email.dlq: %d × %q", n, r)
	}
	say.Command("mqctl dlq show email.dlq")
	rep.Replayed, err = demoReplay(ctx, cfg.Dialer, policies[Email].DLQ)
	if err != nil {
		return rep, err
	}
	say.Say("replayed %d messages to the queue they died in (email), not to user.events, so points and coupons are not granted again", rep.Replayed)
	say.Command("mqctl dlq replay email.dlq --all --yes")
	if err := waitEffects("the replayed e-mails", time.Minute, func(t Tally) bool { return allHave(t, ids2, Email) }); err != nil {
		return rep, err
	}

	say.Step("Check: every user got exactly one e-mail, one points grant, and VIPs one coupon")
	// Let anything still in flight land before counting.
	if err := demoSettle(ctx, cfg.Dialer); err != nil {
		return rep, err
	}
	tally, err := fx.Count(ctx)
	if err != nil {
		return rep, err
	}
	list, err := store.Users(ctx)
	if err != nil {
		return rep, err
	}
	rep.OK = len(list) == len(users)
	for _, u := range list {
		c := tally[u.ID]
		ue := UserEffects{UserID: u.ID, Name: u.Name, VIP: u.VIP, Emails: c[Email], Points: c[Points], Coupons: c[Coupon]}
		wantCoupons := 0
		if u.VIP {
			wantCoupons = 1
		}
		ue.OK = ue.Emails == 1 && ue.Points == 1 && ue.Coupons == wantCoupons
		rep.OK = rep.OK && ue.OK
		rep.Users = append(rep.Users, ue)
	}
	rep.Retried, rep.DeadLettered = retried.Load(), dead.Load()
	bgMu.Lock()
	defer bgMu.Unlock()
	if bgErr != nil {
		return rep, bgErr
	}
	if !rep.OK {
		return rep, ErrDemoCheckFailed
	}
	return rep, nil
}

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return jsonDecode(resp.Body, v)
}

func allHave(t Tally, ids []string, effect string) bool {
	for _, id := range ids {
		if t[id][effect] < 1 {
			return false
		}
	}
	return true
}

func latencyOf(phase string, lat []time.Duration) PhaseLatency {
	s := slices.Clone(lat)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return PhaseLatency{Phase: phase, Signups: len(s), P50ms: ms(pct(0.5)), P95ms: ms(pct(0.95)), MaxMs: ms(s[len(s)-1])}
}

// withChannel runs f on a fresh connection and channel.
func withChannel(ctx context.Context, d *broker.Dialer, f func(*amqp.Channel) error) error {
	conn, err := d.Dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return f(ch)
}

func demoDepth(ctx context.Context, d *broker.Dialer, queue string) (int, error) {
	var n int
	err := withChannel(ctx, d, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		n = q.Messages
		return err
	})
	return n, err
}

// demoSettle waits until the work queues and delay queues are empty.
func demoSettle(ctx context.Context, d *broker.Dialer) error {
	var queues []string
	for _, e := range SideEffects {
		queues = append(queues, e, pattern.DelayQueue(e, 1), pattern.DelayQueue(e, 2))
	}
	deadline := time.Now().Add(time.Minute)
	for {
		busy := 0
		for _, q := range queues {
			n, err := demoDepth(ctx, d, q)
			if err != nil {
				var ae *amqp.Error
				if errors.As(err, &ae) && ae.Code == amqp.NotFound {
					continue
				}
				return err
			}
			busy += n
		}
		if busy == 0 || time.Now().After(deadline) {
			return nil
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// demoPeek counts a DLQ's failure reasons without removing anything
// (dlq.Peek, as `mqctl dlq show` reads).
func demoPeek(ctx context.Context, d *broker.Dialer, queue string) (map[string]int, error) {
	conn, err := d.Dial(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	reasons := map[string]int{}
	_, err = dlq.Peek(ctx, conn, queue, 0, func(r dlq.Record) error {
		reasons[dlq.ReasonText(r.Death)]++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("peek %s: %w", queue, err)
	}
	return reasons, nil
}

// demoReplay replays every message of queue to the queue it died in with
// dlq.Replay, as `mqctl dlq replay QUEUE --all --yes` does: confirm +
// mandatory publish, the dead letter acked only after its confirm, failure
// headers kept in the death history and the replay counter incremented.
func demoReplay(ctx context.Context, d *broker.Dialer, queue string) (int, error) {
	src, err := d.Dial(ctx)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	dst, err := d.Dial(ctx)
	if err != nil {
		return 0, err
	}
	defer dst.Close()
	rep, err := dlq.Replay(ctx, src, dst, dlq.ReplayOptions{Queue: queue, Selection: dlq.SelectAll(), MaxReplays: 3, Window: 64})
	if err != nil {
		return 0, fmt.Errorf("replay %s: %w", queue, err)
	}
	if rep.Partial() {
		return rep.Replayed, fmt.Errorf("replay %s: only %d of %d messages replayed (%d skipped, %d failed)", queue, rep.Replayed, rep.Scanned, rep.Skipped, rep.Failed)
	}
	return rep.Replayed, nil
}
