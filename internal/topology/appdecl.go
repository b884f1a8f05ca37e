package topology

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// AppDeclaration says whether an app's own declaration of one of the
// file's queues — queue_declare(name, durable=True) and nothing else, as
// the tutorials write it — is equivalent to the queue mqctl creates, and
// if not, what the app must send instead. A declaration that is not
// equivalent gets 406 PRECONDITION_FAILED and its channel closed.
type AppDeclaration struct {
	Queue string `json:"queue"`
	// Plain is true when durable=True without arguments is equivalent.
	Plain bool `json:"plain"`
	// Durable is the durability the declaration must ask for.
	Durable bool `json:"durable"`
	// Arguments are what a declaration must send, exactly, when Plain is
	// false (a passive declaration needs none).
	Arguments map[string]any `json:"arguments,omitempty"`
	// Why a plain declaration fails.
	Why string `json:"why,omitempty"`
	// Alternative makes the plain declaration equivalent without
	// changing the app, where the broker allows it.
	Alternative string `json:"alternative,omitempty"`
}

// vhostDefaultTypeFrom is the first RabbitMQ release where a declaration
// without x-queue-type is compared as the vhost's default queue type;
// before it (checked on 3.10) such a declaration means classic.
var vhostDefaultTypeFrom = Version{Major: 4}

// AppDeclarations answers, for each queue declared in the file (not the
// delay and dead-letter queues mqctl generates, which apps do not
// declare), whether a plain app declaration is equivalent on a broker of
// the given version whose vhost has the given default queue type ("" is
// classic). Checked on 3.10, 4.0 and 4.3: any x-argument the queue has
// must be repeated exactly; the queue type may be left out only where it
// equals what the broker assumes for a declaration without one.
func AppDeclarations(x *Expanded, version, vhostDefaultType string) []AppDeclaration {
	v, _ := ParseVersion(version)
	assumed := "classic"
	if !v.Less(vhostDefaultTypeFrom) && vhostDefaultType != "" {
		assumed = vhostDefaultType
	}
	var out []AppDeclaration
	for _, q := range x.Defs.Queues {
		if x.Queues[q.Name].Role != RoleDeclared {
			continue
		}
		out = append(out, appDeclaration(q, x.Vhost, v, assumed))
	}
	slices.SortFunc(out, func(a, b AppDeclaration) int { return cmp.Compare(a.Queue, b.Queue) })
	return out
}

func appDeclaration(q DefQueue, vhost string, v Version, assumed string) AppDeclaration {
	d := AppDeclaration{Queue: q.Name, Durable: q.Durable, Plain: true}
	typ, _ := q.Arguments["x-queue-type"].(string)
	if typ == "" {
		typ = "classic"
	}
	others := maps.Clone(q.Arguments)
	delete(others, "x-queue-type")
	switch {
	case len(others) > 0:
		d.Plain, d.Arguments = false, maps.Clone(q.Arguments)
		d.Why = fmt.Sprintf("the queue has x-arguments (%s), which every declaration must repeat exactly; queue_settings: policies (the default) moves mqctl's own settings out of them", joinKeys(others))
	case typ != assumed:
		d.Plain, d.Arguments = false, map[string]any{"x-queue-type": typ}
		d.Why = fmt.Sprintf("RabbitMQ %s takes a declaration without x-queue-type as %s in vhost %s, and the queue is %s", v, assumed, vhost, typ)
		if !v.Less(vhostDefaultTypeFrom) {
			d.Alternative = fmt.Sprintf("set vhost %s's default queue type to %s (`rabbitmqctl update_vhost_metadata %s --default-queue-type %s`); plain declarations of its classic queues then fail instead", vhost, typ, vhost, typ)
		}
	}
	if !q.Durable {
		d.Plain = false
		if d.Why == "" {
			d.Why = "the queue is not durable: the declaration must say durable=False"
		}
	}
	return d
}

func joinKeys(m map[string]any) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}
