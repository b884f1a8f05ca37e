package registration

import (
	"context"
	"fmt"
	"time"

	"github.com/mqctl/mqctl/examples"
	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/topology"
)

// Topology returns the demo topology, examples/registration/topology.yaml
// (embedded), parsed and validated, for vhost. Each side effect named in
// retry gets that policy's max_attempts and backoff in place of the
// file's, before validation, so the demo (and tests) can use short
// backoffs; the queues, bindings and DLQs stay the file's.
func Topology(vhost string, retry map[string]pattern.Retry) (*topology.File, error) {
	f, err := topology.ParseAndValidate(examples.RegistrationTopologyPath, examples.RegistrationTopology)
	if err != nil {
		return nil, err
	}
	f.Vhost = vhost
	if len(retry) == 0 {
		return f, nil
	}
	first := ""
	for i := range f.Queues {
		q := &f.Queues[i]
		r, ok := retry[q.Name]
		if !ok || q.Retry == nil {
			continue
		}
		if first == "" {
			first = q.Name
		}
		q.Retry.MaxAttempts = r.MaxAttempts
		q.Retry.Backoff = make([]topology.Duration, len(r.Backoff))
		for j, d := range r.Backoff {
			q.Retry.Backoff[j] = topology.Duration(d)
		}
	}
	if ps := topology.Validate(f); len(ps) > 0 {
		r := retry[first]
		return nil, fmt.Errorf("retry policy of %s (max attempts %d, backoff %v): %w", first, r.MaxAttempts, r.Backoff, ps)
	}
	return f, nil
}

// UniformRetry is retry for every side effect, as Topology takes it.
func UniformRetry(retry pattern.Retry) map[string]pattern.Retry {
	out := map[string]pattern.Retry{}
	for _, e := range SideEffects {
		out[e] = retry
	}
	return out
}

// Policies returns each side effect's retry policy as f declares it.
func Policies(f *topology.File) (map[string]pattern.Retry, error) {
	out := map[string]pattern.Retry{}
	for _, q := range f.Queues {
		out[q.Name] = f.RetryOf(q)
	}
	for _, e := range SideEffects {
		if _, ok := out[e]; !ok {
			return nil, fmt.Errorf("topology %s has no queue %s", f.Name, e)
		}
	}
	return out, nil
}

// ApplyTopology applies f to its vhost on b the way `mqctl topology apply
// -f FILE` does (plan against the live definitions, then import; Apply
// refuses a plan with conflicts), without pruning.
func ApplyTopology(ctx context.Context, b topology.Broker, f *topology.File) (*topology.Result, error) {
	res, err := topology.ApplyExpanded(ctx, b, topology.Expand(f))
	if err != nil {
		return nil, fmt.Errorf("apply the demo topology: %w", err)
	}
	return res, nil
}

// DefaultBackoff is the demo topology's retry backoff
// (examples/registration/topology.yaml), the default of `mqctl consume
// --backoff`.
var DefaultBackoff = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute}

// DefaultMaxAttempts is the demo topology's max_attempts, the default of
// `mqctl consume --max-attempts`.
const DefaultMaxAttempts = 4
