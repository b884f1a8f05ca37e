package topology

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mqctl/mqctl/internal/inputfile"
)

// FuzzParseAndValidate feeds arbitrary bytes through the parser, the
// validator and, for valid files, the expansion, export and flow: nothing
// may panic, and a valid file must survive export → parse. Without -fuzz it
// runs the seed corpus only, as a normal fast test.
func FuzzParseAndValidate(f *testing.F) {
	ex, err := os.ReadFile("../../examples/registration/topology.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ex)
	for _, s := range []string{
		planBase,
		"",
		"---\n---\n",
		"apiVersion: mqctl/v1\nqueues: [{name: q, retry: {max_attempts: 9, backoff: [1ms]}, dead_letter: true}]\n",
		"apiVersion: mqctl/v1\nqueues:\n  - &a {name: q}\n  - *a\n",
		"apiVersion: mqctl/v1\nqueues: [{name: q, arguments: {x-message-ttl: 1e400}}]\n",
		"apiVersion: mqctl/v1\nbindings: [{source: '', destination: ''}]\n",
		"apiVersion: !!str mqctl/v1\nvhost: ~\n",
		"apiVersion: mqctl/v1\nqueues: [{name: q, delivery_limit: 99999999999999999999}]\n",
		"apiVersion: mqctl/v1\nqueues: [{name: a, dead_letter: b}, {name: b, dead_letter: a}]\n",
		"{[}",
		"apiVersion: mqctl/v1\nqueues: [{name: q, retry: {max_attempts: -1, backoff: 5s}}]\n",
		"apiVersion: mqctl/v1\nqueues: [{name: \"\xff\xfe\"}]\n",
		"\xef\xbb\xbfapiVersion: mqctl/v1\nqueues: [{name: q}]\n",
		"apiVersion: mqctl/v1\x00\nqueues: [{name: q}]\n",
		"apiVersion: mqctl/v1\nqueues: [{name: q, arguments: {a: &a [1, 2], b: [*a, *a]}}]\n",
		"apiVersion: mqctl/v1\nqueues: [{name: q, arguments: {<<: {x: 1}}}]\n",
		"apiVersion: mqctl/v1\nqueues: [{name: q, bindings: [{exchange: e, arguments: [1]}]}]\nexchanges: [{name: e, type: headers}]\n",
		"apiVersion: mqctl/v1\nqueues: [" + strings.Repeat("[", 2000) + "]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseAndValidate("fuzz.yaml", data)
		if err != nil {
			var ps inputfile.Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("rejection is not a list of problems: %v", err)
			}
			for _, p := range ps {
				if p.File != "fuzz.yaml" || p.Message == "" {
					t.Fatalf("problem without file or message: %+v", p)
				}
			}
			return
		}
		x := Expand(file)
		_ = BuildFlow(file).Text()
		_ = BuildFlow(file).Mermaid()
		out, err := Marshal(Export(x.Vhost, &x.Defs))
		if err != nil {
			t.Fatalf("marshal export: %v", err)
		}
		if _, err := ParseAndValidate("export.yaml", out); err != nil {
			t.Fatalf("export of a valid file does not validate: %v\ninput:\n%s\nexport:\n%s", err, data, out)
		}
	})
}

// FuzzReadDefinitions feeds arbitrary bytes to the reader behind `topology
// export --from-definitions`: nothing may panic, every rejection names the
// file, line and column, and whatever it accepts converts into a topology
// file that marshals; a converted file that validates survives a second
// round (expand → export) unchanged.
func FuzzReadDefinitions(f *testing.F) {
	for _, s := range []string{
		`{"rabbit_version":"3.10.8","queues":[{"name":"email","vhost":"/","durable":true,"auto_delete":false,"arguments":{"x-queue-type":"quorum","x-dead-letter-exchange":"email.dlx","x-dead-letter-routing-key":"email","x-delivery-limit":10,"x-dead-letter-strategy":"at-least-once","x-overflow":"reject-publish"}},{"name":"email.dlq","vhost":"/","durable":true,"auto_delete":false,"arguments":{}},{"name":"email.retry.1","vhost":"/","durable":true,"auto_delete":false,"arguments":{"x-queue-type":"quorum","x-message-ttl":5000,"x-dead-letter-exchange":"","x-dead-letter-routing-key":"email","x-dead-letter-strategy":"at-least-once","x-overflow":"reject-publish"}}],"exchanges":[{"name":"email.dlx","vhost":"/","type":"direct","durable":true,"auto_delete":false,"internal":false,"arguments":{}},{"name":"user.events","vhost":"/","type":"topic","durable":true,"auto_delete":false,"internal":false,"arguments":{}}],"bindings":[{"source":"email.dlx","vhost":"/","destination":"email.dlq","destination_type":"queue","routing_key":"email","arguments":{}},{"source":"user.events","vhost":"/","destination":"email","destination_type":"queue","routing_key":"user.registered.#","arguments":{}}],"policies":[{"vhost":"/","name":"p","pattern":"^email$","apply-to":"queues","definition":{"max-length":100000,"x":[1,{"y":2.5}]},"priority":1}]}`,
		`{"queues":[{"name":"a","vhost":"v1"},{"name":"b","vhost":"v2"}]}`,
		`{"queues":[{"name":5}]}`,
		`{"queues":{"name":"a"}}`,
		`{"policies":[{"name":"p","priority":1e400,"definition":{}}]}`,
		`{"queues":[{"name":"q","arguments":{"x-message-ttl":1e400,"x-max-length":-0}}]}`,
		`{"rabbit_version":"3.10.8"} {"again":1}`,
		`{"rabbit_version":"3.10.8",`,
		`{"name":"not definitions"}`,
		`[]`,
		`null`,
		"",
		"\xef\xbb\xbf{\"queues\":[]}",
		"{\"queues\":[{\"name\":\"\xff\"}]}",
		`{"bindings":[{"source":"","destination":"q","destination_type":"queue","routing_key":"q"},{"source":"x","destination":"y","destination_type":"exchange"}]}`,
		`{"exchanges":[{"name":"amq.direct","type":"direct"},{"name":"","type":"direct"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		perVhost, err := ReadDefinitions("fuzz.json", data)
		if err != nil {
			var ps inputfile.Problems
			if !errors.As(err, &ps) || len(ps) != 1 || ps[0].File != "fuzz.json" || ps[0].Line < 1 || ps[0].Column < 1 {
				t.Fatalf("rejection does not name file, line and column: %#v", err)
			}
			return
		}
		for vhost, d := range perVhost {
			out, err := Marshal(Export(vhost, d))
			if err != nil {
				t.Fatalf("converted topology does not marshal: %v", err)
			}
			file, err := ParseAndValidate("converted.yaml", out)
			if err != nil {
				continue // export warns that such a file needs editing
			}
			x := Expand(file)
			again, err := Marshal(Export(vhost, &x.Defs))
			if err != nil {
				t.Fatalf("re-export does not marshal: %v", err)
			}
			if string(again) != string(out) {
				t.Fatalf("converted file changes through expand → export:\n%s\n---\n%s", out, again)
			}
		}
	})
}
