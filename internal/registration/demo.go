package registration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

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
// exactly-once check. The report holds what was done when it fails.
func RunDemo(ctx context.Context, cfg DemoConfig, say Narrator) (DemoReport, error) {
	d := &demo{cfg: cfg, say: say, users: map[string]bool{}, client: &http.Client{Timeout: 10 * time.Second}}
	d.backoff = make([]string, len(cfg.Retry.Backoff))
	for i, b := range cfg.Retry.Backoff {
		d.backoff[i] = b.String()
	}
	err := d.run(ctx)
	return d.rep, err
}

// demo is one run of the story: its settings, the running app, and what it
// has seen so far.
type demo struct {
	cfg     DemoConfig
	say     Narrator
	rep     DemoReport
	backoff []string // cfg.Retry.Backoff as the flags spell it

	policies  map[string]pattern.Retry
	stack     *Stack
	fx        *Effects
	providers map[string]*Provider
	workers   tasks
	stopAll   context.CancelFunc

	retried, dead atomic.Int64
	client        *http.Client
	users         map[string]bool // user id → VIP
	downIDs       []string        // the users signed up while e-mail was down
}

// run tells the story step by step; the app runs from the second step to
// the end.
func (d *demo) run(ctx context.Context) error {
	if err := d.applyTopology(ctx); err != nil {
		return err
	}
	db, err := ledger.Open(filepath.Join(d.cfg.Dir, "registration.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := d.startApp(ctx, db); err != nil {
		return err
	}
	for _, step := range []func(context.Context) error{d.signUpHealthy, d.breakEmail, d.fixAndReplay, d.check} {
		if err := step(ctx); err != nil {
			_ = d.stopApp()
			return err
		}
	}
	if err := d.stopApp(); err != nil {
		return err
	}
	if !d.rep.OK {
		return ErrDemoCheckFailed
	}
	return nil
}

// applyTopology applies the example file with the demo's retry policy.
func (d *demo) applyTopology(ctx context.Context) error {
	cfg := d.cfg
	file, err := Topology(cfg.Vhost, UniformRetry(cfg.Retry))
	if err != nil {
		return fmt.Errorf("demo %w", err)
	}
	if d.policies, err = Policies(file); err != nil {
		return err
	}
	d.say.Step("Declare the topology: exchange user.events, queues email, points, coupon, each with delay queues and a DLQ")
	applied, err := ApplyTopology(ctx, cfg.Topology, file)
	if err != nil {
		return err
	}
	d.say.Say("applied %d objects from %s", applied.Applied, examples.RegistrationTopologyPath)
	d.say.Say("retry: %d attempts, backoff %s (short, for the demo; the example file uses 5s,30s,2m)", cfg.Retry.MaxAttempts, strings.Join(d.backoff, ","))
	d.say.Command("mqctl topology apply -f " + examples.RegistrationTopologyPath)
	return nil
}

// startApp starts the sign-up stack (as `mqctl serve` runs it) and the
// three workers (as `mqctl consume` runs them) on db.
func (d *demo) startApp(ctx context.Context, db *sql.DB) error {
	cfg := d.cfg
	d.say.Step("Start the sign-up API and the three workers")
	l, err := ledger.New(ctx, db)
	if err != nil {
		return err
	}
	if d.fx, err = NewEffects(ctx, l); err != nil {
		return err
	}
	handlers := map[string]worker.Handler{}
	d.providers = map[string]*Provider{
		Email:  NewProvider(cfg.EmailLatency, 0, false),
		Points: NewProvider(cfg.EmailLatency/3, 0, false),
		Coupon: NewProvider(cfg.EmailLatency/3, 0, false),
	}
	for _, e := range SideEffects {
		if handlers[e], err = d.fx.Handler(e, d.providers[e]); err != nil {
			return err
		}
	}
	d.stack, err = StartStack(ctx, StackConfig{DB: db, Listen: "127.0.0.1:0", Relay: Relay{Dialer: cfg.Dialer, Poll: 200 * time.Millisecond}})
	if err != nil {
		return fmt.Errorf("start the demo API: %w", err)
	}
	runCtx, stopAll := context.WithCancel(context.WithoutCancel(ctx))
	d.stopAll = stopAll
	for _, e := range SideEffects {
		d.workers.run(func() error {
			return worker.Run(runCtx, worker.Config{
				Queue: e, Retry: d.policies[e], Prefetch: 10, Dialer: cfg.Dialer, Handler: handlers[e], OnEvent: d.count,
			})
		})
	}
	d.say.Say("API on %s; e-mail provider latency %s, points and coupon %s", d.stack.URL(), cfg.EmailLatency, cfg.EmailLatency/3)
	d.say.Command("mqctl serve --listen " + d.stack.Addr())
	d.say.Command(fmt.Sprintf("mqctl consume email --latency %s --max-attempts %d --backoff %s", cfg.EmailLatency, d.policies[Email].MaxAttempts, strings.Join(d.backoff, ",")))
	d.say.Command(fmt.Sprintf("mqctl consume points --latency %s", cfg.EmailLatency/3))
	d.say.Command(fmt.Sprintf("mqctl consume coupon --latency %s", cfg.EmailLatency/3))
	return nil
}

// count keeps the retries and dead letters the workers report.
func (d *demo) count(ev worker.Event) {
	switch ev.Kind {
	case worker.Retried:
		d.retried.Add(1)
	case worker.DeadLettered:
		d.dead.Add(1)
	}
}

// stopApp stops the API and relay, then the workers (after finishing the
// deliveries in hand), and returns why any of them failed.
func (d *demo) stopApp() error {
	err := d.stack.Stop()
	d.stopAll()
	return errors.Join(err, d.workers.wait())
}

// signUpHealthy signs the first users up and waits for their side effects.
func (d *demo) signUpHealthy(ctx context.Context) error {
	cfg := d.cfg
	d.say.Step(fmt.Sprintf("Sign up %d users with every provider healthy", cfg.Users))
	ids, err := d.signUp(ctx, "healthy", 0)
	if err != nil {
		return err
	}
	lat := d.rep.Latency[len(d.rep.Latency)-1]
	d.say.Say("sign-up latency: p50 %.1f ms, p95 %.1f ms, max %.1f ms (a synchronous chain of the three providers would add at least %s each)",
		lat.P50ms, lat.P95ms, lat.MaxMs, cfg.EmailLatency+2*(cfg.EmailLatency/3))
	vips := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !d.users[id] })
	if err := d.waitEffects(ctx, "the side effects of the first sign-ups", func(t Tally) bool {
		return allHave(t, ids, Email) && allHave(t, ids, Points) && allHave(t, vips, Coupon)
	}); err != nil {
		return err
	}
	d.say.Say("all %d welcome e-mails sent, points granted, VIP coupons issued", len(ids))
	return nil
}

// breakEmail takes the e-mail provider down, signs more users up, and
// follows their e-mails through the delay queues into email.dlq.
func (d *demo) breakEmail(ctx context.Context) error {
	cfg := d.cfg
	d.say.Step("Break the e-mail provider and sign up more users")
	d.providers[Email].SetDown(true)
	d.say.Command(fmt.Sprintf("mqctl consume email --down --max-attempts %d --backoff %s", cfg.Retry.MaxAttempts, strings.Join(d.backoff, ",")))
	ids, err := d.signUp(ctx, "e-mail provider down", cfg.Users)
	if err != nil {
		return err
	}
	d.downIDs = ids
	lat := d.rep.Latency[len(d.rep.Latency)-1]
	d.say.Say("sign-up latency: p50 %.1f ms, p95 %.1f ms, max %.1f ms: unchanged, the broken provider is not in the request path", lat.P50ms, lat.P95ms, lat.MaxMs)
	d.say.Say("e-mails are retried after %s, then dead-lettered to email.dlq after attempt %d…", strings.Join(d.backoff, ", "), cfg.Retry.MaxAttempts)
	if err := d.watchDeadLetters(ctx, len(ids)); err != nil {
		return err
	}
	if err := d.waitEffects(ctx, "points for the new users", func(t Tally) bool { return allHave(t, ids, Points) }); err != nil {
		return err
	}
	d.say.Say("%d retries so far; %d e-mails in email.dlq; points and coupons for the new users were not held up", d.retried.Load(), len(ids))
	d.say.Command("mqctl backlog 'email*'")
	return nil
}

// watchDeadLetters shows the depths of email, its delay queues and its DLQ
// about once a second until the DLQ holds want messages (2 min at most).
func (d *demo) watchDeadLetters(ctx context.Context, want int) error {
	deadline := time.Now().Add(2 * time.Minute)
	watch := []string{Email}
	for i := 1; i <= d.cfg.Retry.Steps(); i++ {
		watch = append(watch, pattern.DelayQueue(Email, i))
	}
	watch = append(watch, "email.dlq")
	lastShown := time.Time{}
	for {
		depths := make([]string, len(watch))
		n := 0
		for i, q := range watch {
			depth, _, err := d.cfg.Dialer.QueueCounts(ctx, q)
			if err != nil {
				return err
			}
			depths[i] = fmt.Sprintf("%s %d", q, depth)
			n = depth
		}
		if n >= want || time.Since(lastShown) >= time.Second {
			d.say.Say("  %s", strings.Join(depths, " · "))
			lastShown = time.Now()
		}
		if n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: only %d of %d e-mails reached email.dlq within 2m", n, want)
		}
		if err := broker.Sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// fixAndReplay fixes the e-mail provider, shows why the DLQ's messages
// died, replays them to the email queue and waits for the e-mails.
func (d *demo) fixAndReplay(ctx context.Context) error {
	cfg := d.cfg
	d.say.Step("Fix the provider, inspect the DLQ and replay it")
	d.providers[Email].SetDown(false)
	d.say.Command(fmt.Sprintf("mqctl consume email --latency %s", cfg.EmailLatency))
	reasons, err := demoPeek(ctx, cfg.Dialer, d.policies[Email].DLQ)
	if err != nil {
		return err
	}
	for r, n := range reasons {
		d.say.Say("email.dlq: %d × %q", n, r)
	}
	d.say.Command("mqctl dlq show email.dlq")
	if d.rep.Replayed, err = demoReplay(ctx, cfg.Dialer, d.policies[Email].DLQ); err != nil {
		return err
	}
	d.say.Say("replayed %d messages to the queue they died in (email), not to user.events, so points and coupons are not granted again", d.rep.Replayed)
	d.say.Command("mqctl dlq replay email.dlq --all --yes")
	return d.waitEffects(ctx, "the replayed e-mails", func(t Tally) bool { return allHave(t, d.downIDs, Email) })
}

// check counts every user's side effects once the queues are quiet.
func (d *demo) check(ctx context.Context) error {
	d.say.Step("Check: every user got exactly one e-mail, one points grant, and VIPs one coupon")
	// Let anything still in flight land before counting.
	if err := demoSettle(ctx, d.cfg.Dialer); err != nil {
		return err
	}
	tally, err := d.fx.Count(ctx)
	if err != nil {
		return err
	}
	list, err := d.stack.Store.Users(ctx)
	if err != nil {
		return err
	}
	d.rep.OK = len(list) == len(d.users)
	for _, u := range list {
		c := tally[u.ID]
		ue := UserEffects{UserID: u.ID, Name: u.Name, VIP: u.VIP, Emails: c[Email], Points: c[Points], Coupons: c[Coupon]}
		wantCoupons := 0
		if u.VIP {
			wantCoupons = 1
		}
		ue.OK = ue.Emails == 1 && ue.Points == 1 && ue.Coupons == wantCoupons
		d.rep.OK = d.rep.OK && ue.OK
		d.rep.Users = append(d.rep.Users, ue)
	}
	d.rep.Retried, d.rep.DeadLettered = d.retried.Load(), d.dead.Load()
	return nil
}

// signUp registers cfg.Users users through the API, numbered from from
// (every fourth a VIP), records the phase's latency and returns their ids.
func (d *demo) signUp(ctx context.Context, phase string, from int) ([]string, error) {
	var lat []time.Duration
	var ids []string
	for i := from; i < from+d.cfg.Users; i++ {
		vip := i%4 == 0
		body := fmt.Sprintf(`{"name":"user %d","email":"user%d@example.com","vip":%v}`, i+1, i+1, vip)
		t0 := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.stack.URL()+"/register", strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := d.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("sign up user %d: %w", i+1, err)
		}
		var out RegisterResponse
		err = decodeJSON(resp, &out)
		lat = append(lat, time.Since(t0))
		if err != nil || resp.StatusCode != http.StatusCreated {
			return nil, fmt.Errorf("sign up user %d: HTTP %d %v", i+1, resp.StatusCode, err)
		}
		d.users[out.UserID] = vip
		ids = append(ids, out.UserID)
	}
	d.rep.Latency = append(d.rep.Latency, latencyOf(phase, lat))
	return ids, nil
}

// waitEffects polls the side-effect tables until done says so (1 min at most).
func (d *demo) waitEffects(ctx context.Context, what string, done func(Tally) bool) error {
	const within = time.Minute
	deadline := time.Now().Add(within)
	for {
		t, err := d.fx.Count(ctx)
		if err != nil {
			return err
		}
		if done(t) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: %s did not happen within %s; is the broker healthy? (`mqctl doctor`)", what, within)
		}
		if err := broker.Sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
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
			n, _, err := d.QueueCounts(ctx, q)
			if errors.Is(err, broker.ErrQueueNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			busy += n
		}
		if busy == 0 || time.Now().After(deadline) {
			return nil
		}
		if err := broker.Sleep(ctx, 200*time.Millisecond); err != nil {
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
