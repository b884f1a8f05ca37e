package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
)

// Exit codes, as documented in README.md ("Exit codes") and `mqctl --help`.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitCondition   = 3
	ExitAuth        = 4
	ExitInterrupted = 130
)

// ExitCode maps an error to mqctl's exit code. It is the only place that
// does: every command returns errors and lets this decide. parsed reports
// whether cobra got past flag and argument parsing; an unmarked error before
// that point is a usage error.
func ExitCode(ctx context.Context, err error, parsed bool) int {
	if err == nil {
		return ExitOK
	}
	if k, ok := fail.KindOf(err); ok {
		return kindCode(k)
	}
	if ctx != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return ExitInterrupted
	}
	var ae *amqp.Error
	if errors.As(err, &ae) && (ae.Code == amqp.AccessRefused || ae.Code == amqp.NotAllowed) {
		return ExitAuth
	}
	if !parsed {
		return ExitUsage
	}
	return ExitError
}

func kindCode(k fail.Kind) int {
	switch k {
	case fail.Usage:
		return ExitUsage
	case fail.Condition:
		return ExitCondition
	case fail.Auth:
		return ExitAuth
	case fail.Interrupted:
		return ExitInterrupted
	default:
		return ExitError
	}
}

// printError writes err to w, secrets masked. Condition errors are not
// failures of mqctl, so they carry no "Error:" prefix.
func printError(w io.Writer, r *config.Redactor, err error, code int) {
	msg := r.Redact(err.Error())
	if h := permissionHint(err); h != "" {
		msg += "; " + h
	}
	switch code {
	case ExitCondition:
		fmt.Fprintln(w, msg)
	case ExitInterrupted:
		fmt.Fprintln(w, "interrupted")
	default:
		fmt.Fprintln(w, "Error:", msg)
	}
}

// permissionHint explains a broker's ACCESS_REFUSED on an object: RabbitMQ
// 3.10 names the object but not the permission it wanted.
func permissionHint(err error) string {
	var ae *amqp.Error
	var published *broker.ChannelClosedError // says "write" itself
	if errors.As(err, &published) || !errors.As(err, &ae) || ae.Code != amqp.AccessRefused || !strings.Contains(ae.Reason, "access to ") || strings.Contains(ae.Reason, "access to vhost") {
		return ""
	}
	return "declaring or deleting an object needs configure permission on it, publishing write, consuming and purging read " +
		"(`rabbitmqctl list_user_permissions USER` shows them; each command's --help says what it needs)"
}
