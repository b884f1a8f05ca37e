// Package fail defines the kinds of failure mqctl distinguishes, so that domain
// packages can say what went wrong without knowing about exit codes. The CLI
// maps each kind to an exit code in one place (internal/cli/exit.go; the
// table is in README.md, "Exit codes").
package fail

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the user should do about it.
type Kind int

const (
	// Operational is the default: broker unreachable, API error, timeout.
	Operational Kind = iota
	// Usage means the input was wrong: a bad flag, an invalid file, a refusal
	// to act without --yes. Nothing was changed.
	Usage
	// Condition means the command worked but a condition did not hold: a plan
	// has changes, a check failed, an operation finished partially.
	Condition
	// Auth means the broker or the management API refused the credentials or
	// the permission.
	Auth
	// Interrupted means the user stopped the command (SIGINT/SIGTERM).
	Interrupted
)

// String names the kind for logs and JSON.
func (k Kind) String() string {
	switch k {
	case Usage:
		return "usage"
	case Condition:
		return "condition"
	case Auth:
		return "auth"
	case Interrupted:
		return "interrupted"
	default:
		return "operational"
	}
}

// Error carries a Kind alongside the underlying error.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Wrap marks err with kind; a nil err stays nil.
func Wrap(kind Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: kind, Err: err}
}

// Usagef returns a Usage error (exit 2).
func Usagef(format string, a ...any) error { return Wrap(Usage, fmt.Errorf(format, a...)) }

// Conditionf returns a Condition error (exit 3).
func Conditionf(format string, a ...any) error { return Wrap(Condition, fmt.Errorf(format, a...)) }

// Authf returns an Auth error (exit 4).
func Authf(format string, a ...any) error { return Wrap(Auth, fmt.Errorf(format, a...)) }

// KindOf reports the kind an error was marked with, the outermost mark
// winning; unmarked errors are Operational.
func KindOf(err error) (Kind, bool) {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind, true
	}
	return Operational, false
}
