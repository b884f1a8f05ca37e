package topology

import _ "embed"

// Schema is the JSON Schema (draft 2020-12) of the topology file, for
// editors (e.g. `# yaml-language-server: $schema=…`).
//
//go:embed schema.json
var Schema []byte
