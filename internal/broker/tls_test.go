package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/config"
)

// writeCA makes a CA and a server certificate for 127.0.0.1 signed by it,
// and returns the server's TLS certificate and the CA's PEM path.
func writeCA(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mqctl test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	return tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}, caPath
}

// TestMgmtTLSVerifiesByDefault runs the management client against an HTTPS
// server whose certificate is signed by a private CA: refused without the
// CA, accepted with --tls-ca, and accepted with --insecure-skip-verify only.
func TestMgmtTLSVerifiesByDefault(t *testing.T) {
	cert, caPath := writeCA(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ops" || p != "tls-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"rabbitmq_version": "3.10.8", "management_version": "3.10.8"})
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()

	settings := func(tlsOpts config.TLS) config.Settings {
		s, err := config.Resolve(config.Flags{MgmtURL: strings.Replace(srv.URL, "https://", "https://ops:tls-secret@", 1), TLSCA: tlsOpts.CA, InsecureSkipVerify: tlsOpts.InsecureSkipVerify, Timeout: 5 * time.Second},
			func(string) (string, bool) { return "", false }, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	overview := func(s config.Settings) error {
		c, err := NewMgmt(s)
		if err != nil {
			return err
		}
		_, err = c.Overview()
		return MgmtError(s, "read overview", err)
	}

	err := overview(settings(config.TLS{}))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unknown CA accepted by default: %v", err)
	}
	if strings.Contains(err.Error(), "tls-secret") {
		t.Fatalf("password in error: %v", err)
	}
	if err := overview(settings(config.TLS{CA: caPath})); err != nil {
		t.Fatalf("with --tls-ca: %v", err)
	}
	if err := overview(settings(config.TLS{InsecureSkipVerify: true})); err != nil {
		t.Fatalf("with --insecure-skip-verify: %v", err)
	}
}

func TestTLSConfigBadFilesAreUsageErrors(t *testing.T) {
	if _, err := TLSConfig(config.TLS{CA: "/nonexistent/ca.pem"}); err == nil {
		t.Error("missing CA file accepted")
	}
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	if _, err := TLSConfig(config.TLS{CA: notPEM}); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Errorf("non-PEM CA: %v", err)
	}
}
