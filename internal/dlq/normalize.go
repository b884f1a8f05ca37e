package dlq

import (
	"regexp"
	"strings"
)

// NormalizeRules says, for help texts, how NormalizeError turns error
// messages that differ only in ids, numbers and times into one.
const NormalizeRules = `times (2026-05-01T10:15:00Z, 2026-05-01 10:15:00,
10:15:00.123) become <time>; UUIDs, 0x… hex, hex words of 8 or more
(deadbeef), hex parts joined by - (9e3779b1-abcd) and words that mix letters
and digits (u42, 7f3a9c) <id>; e-mail addresses <email>; runs of digits <n>,
keeping a short unit (evt-00042 becomes evt-<n>, 1.5s <n>.<n>s, 250ms <n>ms,
HTTP 503 HTTP <n>); spaces are squeezed and the result cut to 200 characters`

var normalizers = []struct {
	re   *regexp.Regexp
	repl func(string) string
}{
	{regexp.MustCompile(`\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?`), fixed("<time>")},
	{regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`), fixed("<id>")},
	{regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`), fixed("<email>")},
	{regexp.MustCompile(`(?i)\b0x[0-9a-f]+\b`), fixed("<id>")},
	// Hex ids written without a digit in some part (request id
	// 9e3779b1-abcd, deadbeef): long hex words and runs of hex parts
	// joined by '-'. Digits alone are left to the number rule.
	{regexp.MustCompile(`(?i)\b[0-9a-f]{4,}(?:-[0-9a-f]{4,})+\b|\b[0-9a-f]{8,}\b`), hexID},
	{regexp.MustCompile(`\b[0-9A-Za-z_]*[0-9][0-9A-Za-z_]*\b`), word},
}

func fixed(s string) func(string) string { return func(string) string { return s } }

func hexID(w string) string {
	if strings.Trim(w, "0123456789-") == "" {
		return w
	}
	return "<id>"
}

// unit is a short unit after a number: 10ms, 5s, 2xx, 3rd.
var unit = regexp.MustCompile(`^[0-9]+([a-zµ]{1,3})$`)

// word replaces a word that holds a digit: digits alone are a number,
// digits with a short unit a number with that unit, any other mix of
// letters and digits (hex included) an id.
func word(w string) string {
	if strings.Trim(w, "0123456789") == "" {
		return "<n>"
	}
	if m := unit.FindStringSubmatch(w); m != nil {
		return "<n>" + m[1]
	}
	return "<id>"
}

// NormalizeError is err with ids, numbers, UUIDs, hex and times replaced by
// placeholders (see NormalizeRules), so that failures of one kind group
// together.
func NormalizeError(err string) string {
	for _, n := range normalizers {
		err = n.re.ReplaceAllStringFunc(err, n.repl)
	}
	err = strings.Join(strings.Fields(err), " ")
	if len(err) > 200 {
		cut := 200
		for cut > 0 && !startsRune(err[cut]) {
			cut--
		}
		err = err[:cut] + "…"
	}
	return err
}

func startsRune(b byte) bool { return b&0xC0 != 0x80 }
