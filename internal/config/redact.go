package config

import (
	"regexp"
	"slices"
	"strings"
)

// Mask replaces a password wherever mqctl shows one.
const Mask = "xxxxx"

var userinfoRe = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://[^:/@\s]*):([^@/\s]*)@`)

// RedactURL hides the password of every URL in s, including strings that
// are not valid URLs (they often appear in parse errors).
func RedactURL(s string) string {
	return userinfoRe.ReplaceAllString(s, "$1:"+Mask+"@")
}

// MaskUserinfo hides everything between a URL's scheme and its last '@'
// (user name and password), however malformed the URL: for a URL that
// does not parse, where no parser can say which part is the password
// (amqp://u:pa/ss@h, guest:secret@rabbit:5672).
func MaskUserinfo(raw string) string {
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return raw
	}
	start := 0
	if i := strings.Index(raw, "//"); i >= 0 && i < at {
		start = i + 2
	}
	return raw[:start] + Mask + raw[at:]
}

// Redactor scrubs known secrets from any text before it leaves mqctl.
type Redactor struct {
	secrets []string
}

// Add registers secrets to hide; empty strings and very short ones that
// would mangle ordinary words are still hidden inside URLs by RedactURL.
func (r *Redactor) Add(secrets ...string) {
	for _, s := range secrets {
		if len(s) >= 3 && !slices.Contains(r.secrets, s) {
			r.secrets = append(r.secrets, s)
		}
	}
}

// Redact returns s with URL passwords and every registered secret masked.
func (r *Redactor) Redact(s string) string {
	s = RedactURL(s)
	if r == nil {
		return s
	}
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, Mask)
	}
	return s
}
