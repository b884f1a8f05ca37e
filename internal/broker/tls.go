package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"

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

// ErrCertificate marks a dial error that no retry can fix: the broker's
// certificate is not trusted or does not name the host, the other end
// speaks no TLS, or the broker refused the client's certificate.
// DialRetry gives up on it, as on refused credentials.
var ErrCertificate = errors.New("TLS certificate refused")

// certError is a dial error that errors.Is ErrCertificate, with its own
// message.
type certError struct{ msg string }

func (e *certError) Error() string        { return e.msg }
func (e *certError) Is(target error) bool { return target == ErrCertificate }

// tlsFailure classifies a TLS error by what the user can do about it.
type tlsFailure int

const (
	notTLS tlsFailure = iota
	untrustedCA
	wrongHost
	invalidCert
	notTLSPeer
	clientCertRefused
	otherTLS
)

func classifyTLS(err error) tlsFailure {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var record tls.RecordHeaderError
	msg := err.Error()
	switch {
	case errors.As(err, &unknown):
		return untrustedCA
	case errors.As(err, &host):
		return wrongHost
	case errors.As(err, &invalid):
		return invalidCert
	case errors.As(err, &record):
		return notTLSPeer
	case strings.Contains(msg, "remote error: tls: certificate required"), strings.Contains(msg, "remote error: tls: bad certificate"),
		strings.Contains(msg, "remote error: tls: unknown certificate authority"):
		return clientCertRefused
	case strings.Contains(msg, "remote error: tls:"), strings.Contains(msg, "tls: "):
		return otherTLS
	}
	return notTLS
}

// permanentTLS reports whether err is a TLS failure that waiting cannot
// fix (see ErrCertificate).
func permanentTLS(err error) bool {
	k := classifyTLS(err)
	return k != notTLS && k != otherTLS
}

// TLSAdvice says what to do about a TLS failure in err (a certificate the
// client does not trust, a handshake the broker refused), "" when err is
// no TLS failure. The advice never suggests turning verification off
// without saying it is unsafe.
func TLSAdvice(err error) string {
	switch classifyTLS(err) {
	case untrustedCA:
		return "the broker's certificate is signed by an authority this machine does not trust: pass --tls-ca with the CA certificate that signed it (--insecure-skip-verify skips the check: unsafe)"
	case wrongHost:
		return "the broker's certificate does not name this host: connect by a name or address the certificate lists"
	case invalidCert:
		return "the broker's certificate is not valid (expired, not yet valid, or not for a server): renew it"
	case notTLSPeer:
		return "the other end does not speak TLS: use amqp:// or http:// for a plain listener, or the TLS port (5671, 15671)"
	case clientCertRefused:
		return "the broker refused this client's certificate (or wants one): pass --tls-cert and --tls-key with a certificate its CA signed"
	case otherTLS:
		return "the TLS handshake failed: check --tls-ca, --tls-cert and --tls-key against the broker's TLS settings"
	}
	return ""
}
