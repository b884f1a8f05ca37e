package broker

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
)

// TLSConfig builds the client TLS configuration shared by AMQP and HTTP.
// Certificates are verified unless InsecureSkipVerify was asked for
// explicitly.
func TLSConfig(t config.TLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // only when the user says so
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fail.Usagef("read --tls-ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fail.Usagef("--tls-ca %s holds no PEM certificate", t.CA)
		}
		c.RootCAs = pool
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fail.Usagef("load --tls-cert/--tls-key: %v", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// hint appends advice to an error message.
func hint(err error, advice string) error { return fmt.Errorf("%w; %s", err, advice) }
