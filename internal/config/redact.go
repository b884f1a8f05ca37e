package config

import (
	"regexp"
	"slices"
	"strings"
	"unicode"
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
	// words holds, per letters-only secret, where it stands as a
	// credential (see Redact).
	words map[string]*regexp.Regexp
}

// Add registers secrets to hide; empty strings and very short ones that
// would mangle ordinary words are still hidden inside URLs by RedactURL.
func (r *Redactor) Add(secrets ...string) {
	for _, s := range secrets {
		if len(s) >= 3 && !slices.Contains(r.secrets, s) {
			r.secrets = append(r.secrets, s)
			if !strings.ContainsFunc(s, notLetter) {
				if r.words == nil {
					r.words = map[string]*regexp.Regexp{}
				}
				r.words[s] = credentialRe(s)
			}
		}
	}
}

// Redact returns s with URL passwords and the registered secrets masked.
// A secret with a digit or a symbol in it is masked wherever it appears.
// One made of letters only (password, user, wrong) is masked only where
// it stands as a credential — after "password=", "token: " and the like,
// or between ':' and '@' — not in every English word it spells: masking
// "wrong user or password" into "wrong xxxxx or password" would tell the
// reader the password.
func (r *Redactor) Redact(s string) string {
	s = RedactURL(s)
	if r == nil {
		return s
	}
	for _, sec := range r.secrets {
		if re, ok := r.words[sec]; ok {
			s = re.ReplaceAllString(s, "${1}"+Mask+"${2}")
		} else {
			s = strings.ReplaceAll(s, sec, Mask)
		}
	}
	return s
}

func notLetter(c rune) bool { return !unicode.IsLetter(c) }

// credentialRe finds secret where it stands as a credential: the value of
// a password-like key (password=, "secret": ", token: …), or between ':'
// and '@' (user:secret@host).
func credentialRe(secret string) *regexp.Regexp {
	q := regexp.QuoteMeta(secret)
	return regexp.MustCompile(`((?i:pass(?:word)?|passwd|pwd|secret|token|credentials?)"?\s*[=:]\s*"?|:)` + q + `(\b|@|")`)
}
