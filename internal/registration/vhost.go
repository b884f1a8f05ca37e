package registration

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
)

// VhostAdmin is the part of the management API the demo uses to make and
// remove a vhost of its own; *rabbithole.Client satisfies it.
type VhostAdmin interface {
	PutVhost(vhost string, settings rabbithole.VhostSettings) (*http.Response, error)
	UpdatePermissionsIn(vhost, username string, permissions rabbithole.Permissions) (*http.Response, error)
	DeleteVhost(vhost string) (*http.Response, error)
}

// DemoVhost is the vhost one demo run works in, so it never meets anything
// else on the broker.
type DemoVhost struct {
	// Name is mqctl-demo-<random>.
	Name string
	// URLs are the AMQP URLs the demo was given, pointing at Name.
	URLs []string

	admin   VhostAdmin
	explain func(what string, err error) error
}

// CreateDemoVhost creates a vhost named mqctl-demo-<random> through admin
// and grants the user of urls every permission on it. explain turns a
// management API error into one for humans (nil keeps it). A bad URL is a
// usage error. When the vhost was created but the grant failed, the vhost
// comes back with the error, so the caller removes it as usual.
func CreateDemoVhost(admin VhostAdmin, urls []string, explain func(what string, err error) error) (*DemoVhost, error) {
	if explain == nil {
		explain = func(_ string, err error) error { return err }
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	v := &DemoVhost{Name: "mqctl-demo-" + hex.EncodeToString(b), URLs: make([]string, len(urls)), admin: admin, explain: explain}
	var user string
	for i, raw := range urls {
		u, err := amqp.ParseURI(raw)
		if err != nil {
			return nil, fail.Usagef("--url: %v", err)
		}
		user = u.Username
		u.Vhost = v.Name
		v.URLs[i] = u.String()
	}
	if _, err := admin.PutVhost(v.Name, rabbithole.VhostSettings{Description: "mqctl demo"}); err != nil {
		return nil, explain("create the demo vhost "+v.Name, err)
	}
	if _, err := admin.UpdatePermissionsIn(v.Name, user, rabbithole.Permissions{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		return v, explain("grant "+user+" permissions on "+v.Name, err)
	}
	return v, nil
}

// Delete removes the vhost and everything in it.
func (v *DemoVhost) Delete() error {
	if _, err := v.admin.DeleteVhost(v.Name); err != nil {
		return v.explain("delete the demo vhost "+v.Name, err)
	}
	return nil
}
