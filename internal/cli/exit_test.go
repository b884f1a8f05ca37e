package cli

import (
	"context"
	"errors"
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
)

func TestExitCode(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()
	cases := []struct {
		name   string
		ctx    context.Context
		err    error
		parsed bool
		want   int
	}{
		{"nil", bg, nil, true, 0},
		{"plain error", bg, errors.New("boom"), true, 1},
		{"usage", bg, fail.Usagef("bad flag"), true, 2},
		{"wrapped usage", bg, fmt.Errorf("load: %w", fail.Usagef("bad yaml")), true, 2},
		{"condition", bg, fail.Conditionf("plan has changes"), true, 3},
		{"auth", bg, fail.Authf("refused"), true, 4},
		{"amqp access refused", bg, fmt.Errorf("dial: %w", amqp.ErrCredentials), true, 4},
		{"interrupted kind", bg, fail.Wrap(fail.Interrupted, errors.New("x")), true, 130},
		{"canceled by signal", canceled, fmt.Errorf("publish: %w", context.Canceled), true, 130},
		{"unparsed untyped error", bg, errors.New(`unknown command "x"`), false, 2},
		{"outer mark wins", bg, fail.Wrap(fail.Condition, fail.Authf("inner")), true, 3},
	}
	for _, c := range cases {
		if got := ExitCode(c.ctx, c.err, c.parsed); got != c.want {
			t.Errorf("%s: ExitCode = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"nosuchcommand"},
		{"doctor", "--nosuchflag"},
		{"doctor", "extra-arg"},
		{"doctor", "-o", "xml"},
		{"completion", "tcsh"},
		{"version", "--timeout", "soon"},
	} {
		r := runCLI(t, nil, args...)
		if r.Code != ExitUsage {
			t.Errorf("mqctl %v: exit %d, want 2 (stderr %q)", args, r.Code, r.Stderr)
		}
		if r.Stderr == "" {
			t.Errorf("mqctl %v: no message on stderr", args)
		}
	}
}
