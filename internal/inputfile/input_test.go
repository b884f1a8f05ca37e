package inputfile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckTextNamesTheFirstBadByte(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" when text
	}{
		{"plain\ttext\r\nmore é ü 日本\x7f\n", ""},
		{"a: 1\nb: \"x\xffy\"\n", "f:2:6: invalid UTF-8 (byte 0xff)"},
		{"日本\xc3", "f:1:3: invalid UTF-8 (byte 0xc3)"},
		{"ok\n\x00\x01", "f:2:1: control character 0x00"},
		{"\x1b[31m", "f:1:1: control character 0x1b"},
	} {
		p := CheckText("f", []byte(tc.in))
		switch {
		case tc.want == "" && p != nil:
			t.Errorf("%q: %v, want text", tc.in, p)
		case tc.want != "" && (p == nil || !strings.HasPrefix(p.String(), tc.want)):
			t.Errorf("%q: %v, want %s…", tc.in, p, tc.want)
		}
	}
}

func TestReadFileRefusesWhatIsNotAnInputFile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 2048), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(big, "a test file", 1024); err == nil || !strings.Contains(err.Error(), big+": a test file may be at most 1 KiB; this one holds 2 KiB") {
		t.Errorf("big file: %v", err)
	}
	// Not a regular file: read up to the limit, no further.
	if _, err := ReadFile("/dev/zero", "a test file", 1024); err == nil || !strings.Contains(err.Error(), "holds more") {
		t.Errorf("/dev/zero: %v", err)
	}
	if _, err := ReadFile(dir, "a test file", 1024); err == nil || !strings.Contains(err.Error(), dir+": read a test file: read: is a directory") {
		t.Errorf("directory: %v", err)
	}
	bom := filepath.Join(dir, "bom")
	os.WriteFile(bom, []byte("\xef\xbb\xbfa: 1\n"), 0o600)
	if b, err := ReadFile(bom, "a test file", 1024); err != nil || string(b) != "a: 1\n" {
		t.Errorf("byte-order mark: %q %v", b, err)
	}
}

func TestJSONProblemPositions(t *testing.T) {
	var v struct {
		Queues []struct {
			Name string `json:"name"`
		} `json:"queues"`
	}
	for _, tc := range []struct{ in, want string }{
		{"{\n  \"queues\": [{\"name\": x}]\n}", "f:2:23: invalid JSON: invalid character 'x'"},
		{"{\"queues\": [{\"name\": 7}]}", "f:1:22: queues.name: want a string, not a JSON number"},
		{"{\"queues\": [", "f:1:13: invalid JSON: the document ends early"},
	} {
		err := json.Unmarshal([]byte(tc.in), &v)
		if p := JSONProblem("f", []byte(tc.in), err); !strings.HasPrefix(p.String(), tc.want) {
			t.Errorf("%q: %v, want %s…", tc.in, p, tc.want)
		}
	}
}
