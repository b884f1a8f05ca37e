package cli

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/iostreams"
)

func TestConsumeRetryPolicyFromFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "email"}, "{email 4 [5s 30s 2m0s] email.dlq}"},
		{[]string{"consume", "coupon", "--queue", "vip-coupons", "--max-attempts", "2", "--backoff", "1s"}, "{vip-coupons 2 [1s] vip-coupons.dlq}"},
		{[]string{"consume", "points", "--backoff", "100ms,1s", "--dlq", "graveyard"}, "{points 4 [100ms 1s] graveyard}"},
	} {
		ios, _, _, _ := iostreams.Test()
		f := NewFactory(ios, func(string) (string, bool) { return "", false })
		var got string
		root := NewCmdRoot(f)
		for _, c := range root.Commands() {
			if c.Name() == "consume" {
				root.RemoveCommand(c)
			}
		}
		root.AddCommand(NewCmdConsume(f, func(o *ConsumeOptions) error {
			r := consumeRetry(o)
			got = fmt.Sprint(struct {
				Q string
				N int
				B []time.Duration
				D string
			}{r.Queue, r.MaxAttempts, r.Backoff, r.DLQ})
			return nil
		}))
		root.SetArgs(tc.args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got != tc.want {
			t.Errorf("%v: policy %s, want %s", tc.args, got, tc.want)
		}
	}
}
