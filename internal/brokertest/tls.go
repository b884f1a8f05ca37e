package brokertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSFiles are the PEM files of a test PKI: a private CA, a server
// certificate it signed for localhost and 127.0.0.1, and a client
// certificate it signed.
type TLSFiles struct {
	CA         string
	ServerCert string
	ServerKey  string
	ClientCert string
	ClientKey  string
}

// WriteTLSFiles generates a fresh test PKI (ECDSA P-256, valid for a day)
// in dir. Keys are SEC 1 ("EC PRIVATE KEY"), which both Go and Erlang read.
func WriteTLSFiles(t testing.TB, dir string, name string) TLSFiles {
	t.Helper()
	ca, caKey := newCert(t, name+" test CA", nil, nil, func(c *x509.Certificate) {
		c.IsCA, c.BasicConstraintsValid = true, true
		c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	})
	srv, srvKey := newCert(t, "localhost", ca, caKey, func(c *x509.Certificate) {
		c.DNSNames = []string{"localhost"}
		c.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		c.KeyUsage = x509.KeyUsageDigitalSignature
	})
	cli, cliKey := newCert(t, name+" client", ca, caKey, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		c.KeyUsage = x509.KeyUsageDigitalSignature
	})
	f := TLSFiles{
		CA:         filepath.Join(dir, name+"-ca.pem"),
		ServerCert: filepath.Join(dir, name+"-server.pem"),
		ServerKey:  filepath.Join(dir, name+"-server.key"),
		ClientCert: filepath.Join(dir, name+"-client.pem"),
		ClientKey:  filepath.Join(dir, name+"-client.key"),
	}
	writePEM(t, f.CA, "CERTIFICATE", ca.Raw)
	writePEM(t, f.ServerCert, "CERTIFICATE", srv.Raw)
	writePEM(t, f.ServerKey, "EC PRIVATE KEY", ecKey(t, srvKey))
	writePEM(t, f.ClientCert, "CERTIFICATE", cli.Raw)
	writePEM(t, f.ClientKey, "EC PRIVATE KEY", ecKey(t, cliKey))
	return f
}

// NodeTLSConfig is the rabbitmq.conf lines for an AMQPS listener on port
// and an HTTPS management listener on mgmtPort, both with the server
// certificate of f. With requireClientCert, AMQPS clients must present a
// certificate f's CA signed (verify_peer, fail_if_no_peer_cert); the HTTPS
// listener only proves the server.
func NodeTLSConfig(f TLSFiles, port, mgmtPort int, requireClientCert bool) string {
	conf := fmt.Sprintf(`listeners.ssl.default = %d
ssl_options.cacertfile = %s
ssl_options.certfile = %s
ssl_options.keyfile = %s
management.ssl.port = %d
management.ssl.cacertfile = %s
management.ssl.certfile = %s
management.ssl.keyfile = %s
`, port, f.CA, f.ServerCert, f.ServerKey, mgmtPort, f.CA, f.ServerCert, f.ServerKey)
	if requireClientCert {
		conf += "ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n"
	} else {
		conf += "ssl_options.verify = verify_none\n"
	}
	return conf
}

func newCert(t testing.TB, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, shape func(*x509.Certificate)) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	shape(tmpl)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func ecKey(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
