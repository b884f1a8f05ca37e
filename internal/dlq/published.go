package dlq

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Published is what `mqctl publish --from FILE` remembers of a file it
// published, keyed by the file's content: publishing the same archive
// twice would put every message back twice.
type Published struct {
	File      string    `json:"file"`
	SHA256    string    `json:"sha256"`
	At        time.Time `json:"at"`
	Broker    string    `json:"broker"`
	Vhost     string    `json:"vhost"`
	To        string    `json:"to,omitempty"`
	Published int       `json:"published"`
	Failed    int       `json:"failed"`
}

// FileSHA256 is the hex SHA-256 of the file at path.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// PublishedPath is where the record of a file with content hash sum is
// kept under stateDir ($XDG_STATE_HOME).
func PublishedPath(stateDir, sum string) string {
	return filepath.Join(stateDir, "mqctl", "published", sum+".json")
}

// ReadPublished returns the record at path; nil when the file was never
// published.
func ReadPublished(path string) (*Published, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Published
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// WritePublished records p at path (0600, its directory 0700), replacing
// an older record of the same content.
func WritePublished(path string, p Published) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".partial"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
