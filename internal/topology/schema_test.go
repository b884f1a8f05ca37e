package topology

import (
	"encoding/json"
	"testing"
)

// Every key the parser accepts is in the schema, and the schema forbids
// the rest, so editors and validate agree.
func TestSchemaCoversTheFile(t *testing.T) {
	var s struct {
		Properties map[string]any `json:"properties"`
		Defs       map[string]struct {
			Properties map[string]any `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(Schema, &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	has := func(props map[string]any, keys ...string) {
		for _, k := range keys {
			if _, ok := props[k]; !ok {
				t.Errorf("schema lacks %q", k)
			}
		}
	}
	has(s.Properties, "apiVersion", "vhost", "defaults", "exchanges", "queues", "bindings", "policies")
	has(s.Defs["exchange"].Properties, "name", "type", "durable", "auto_delete", "internal", "arguments")
	has(s.Defs["queue"].Properties, "name", "type", "durable", "auto_delete", "arguments", "delivery_limit", "bindings", "retry", "dead_letter")
	has(s.Defs["binding"].Properties, "source", "destination", "destination_type", "routing_key", "arguments")
	has(s.Defs["policy"].Properties, "name", "pattern", "apply_to", "priority", "definition")
}
