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
