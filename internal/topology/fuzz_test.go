package topology

import (
	"os"
	"testing"
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
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseAndValidate("fuzz.yaml", data)
		if err != nil {
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
