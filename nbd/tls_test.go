package nbd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// selfSigned makes a self-signed certificate for localhost, written to
// dir/ca-cert.pem (libnbd's name for the CA it trusts).
func selfSigned(t *testing.T, dir string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM := qemutest.SelfSignedPEM(t)
	if err := os.WriteFile(filepath.Join(dir, "ca-cert.pem"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return cert, pool
}

// TestTLS: a server with a certificate requires TLS: vdisk's client and
// nbdinfo (when its libnbd has TLS) connect with nbds+unix://, a plain
// client is told TLS is required, an untrusted certificate is refused.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, pool := selfSigned(t, dir)
	img, data := memImage(t, 1<<20)
	srv := &Server{Exports: []*Export{{Image: img}}, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	s := serve(t, srv)
	tlsURL := "nbds+unix:///?socket=" + s.sock

	c, err := Dial(context.Background(), tlsURL, DialOptions{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	if _, err := c.ReadAt(buf, 4096); err != nil || !bytes.Equal(buf, data[4096:4096+8192]) {
		t.Fatalf("read over TLS: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := Dial(context.Background(), s.url, DialOptions{}); err == nil || !strings.Contains(err.Error(), "requires TLS") {
		t.Errorf("plain client on a TLS server: %v", err)
	}
	if _, err := Dial(context.Background(), tlsURL, DialOptions{TLSConfig: &tls.Config{ServerName: "localhost"}}); err == nil {
		t.Error("a certificate not in the client's roots was accepted")
	}

	r := qemutest.Exec(t, "nbdinfo", "--json", tlsURL+"&tls-certificates="+dir)
	if r.Code != 0 && strings.Contains(r.Stderr, "TLS") && strings.Contains(r.Stderr, "not") && strings.Contains(r.Stderr, "support") {
		t.Skipf("nbdinfo has no TLS: %s", r.Stderr)
	}
	if r.Code != 0 || !strings.Contains(r.Stdout, `"TLS": true`) {
		t.Errorf("nbdinfo over TLS: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := qemutest.Exec(t, "nbdinfo", "--size", s.url); r.Code == 0 {
		t.Errorf("nbdinfo without TLS on a TLS server: exit 0: %s", r.Stdout)
	}
}
