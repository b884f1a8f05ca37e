// Package examples embeds the example files shipped in this directory, so
// that commands built on them (mqctl demo) work from any directory.
package examples

import _ "embed"

// RegistrationTopologyPath is the example's path in the repository, for
// problems and the equivalent command the demo prints.
const RegistrationTopologyPath = "examples/registration/topology.yaml"

// RegistrationTopology is examples/registration/topology.yaml: the
// registration demo's topology.
//
//go:embed registration/topology.yaml
var RegistrationTopology []byte
