package deadletter

import "strings"

// Matches reports whether a binding with key binding on an exchange of
// type typ receives a message published with routing key key. An empty
// key stands for "the message's own routing key", unknown here, so any
// binding may receive it; so may any binding of a fanout, headers (they
// route on headers, which linkage cannot know) or plugin exchange.
func Matches(typ, binding, key string) bool {
	if key == "" {
		return true
	}
	switch typ {
	case "direct":
		return binding == key
	case "topic":
		return topicMatch(strings.Split(binding, "."), strings.Split(key, "."))
	}
	return true
}

// topicMatch matches a topic binding's words against a routing key's: *
// is one word, # zero or more.
func topicMatch(pattern, words []string) bool {
	if len(pattern) == 0 {
		return len(words) == 0
	}
	switch pattern[0] {
	case "#":
		for i := 0; i <= len(words); i++ {
			if topicMatch(pattern[1:], words[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(words) > 0 && topicMatch(pattern[1:], words[1:])
	}
	return len(words) > 0 && pattern[0] == words[0] && topicMatch(pattern[1:], words[1:])
}
