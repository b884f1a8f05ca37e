package dlq_test

import rabbithole "github.com/michaelklishin/rabbit-hole/v2"

func rabbitPolicy(pattern, dlx string) rabbithole.Policy {
	return rabbithole.Policy{Pattern: pattern, ApplyTo: "queues", Definition: rabbithole.PolicyDefinition{"dead-letter-exchange": dlx}}
}
