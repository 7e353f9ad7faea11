// Command pki writes the test cluster's certificates and kubeconfig into a
// directory (Go's standard library only, so a machine needs no openssl):
//
//	pki DIR https://127.0.0.1:PORT
//
// DIR/ca.crt, ca.key       the cluster's CA (clients and the API server)
// DIR/apiserver.crt, .key  kube-apiserver's serving certificate (127.0.0.1, localhost, kubernetes.default...)
// DIR/admin.crt, .key      a client certificate, CN=cove-admin, O=system:masters
// DIR/sa.key, sa.pub       the service-account token signing key pair
// DIR/kubeconfig           the admin's kubeconfig, certificates embedded
//
// Every file is written to a temporary name and renamed into place.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

type pair struct {
	cert *x509.Certificate
	der  []byte
	key  *rsa.PrivateKey
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: pki DIR https://127.0.0.1:PORT")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "pki:", err)
		os.Exit(1)
	}
}

func run(dir, server string) error {
	ca, err := issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "cove-test-cluster-ca"},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	if err != nil {
		return err
	}
	serving, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default",
			"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	}, ca)
	if err != nil {
		return err
	}
	admin, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "cove-admin", Organization: []string{"system:masters"}},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca)
	if err != nil {
		return err
	}
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"ca.crt", certPEM(ca)},
		{"ca.key", keyPEM(ca.key)},
		{"apiserver.crt", certPEM(serving)},
		{"apiserver.key", keyPEM(serving.key)},
		{"admin.crt", certPEM(admin)},
		{"admin.key", keyPEM(admin.key)},
		{"sa.key", keyPEM(sa)},
		{"sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub})},
		{"kubeconfig", kubeconfig(server, ca, admin)},
	}
	for _, f := range files {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

// issue makes a key and a certificate from tmpl, signed by parent (self-signed when nil).
func issue(tmpl *x509.Certificate, parent *pair) (*pair, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(10 * 365 * 24 * time.Hour)
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &pair{cert: cert, der: der, key: key}, nil
}

func certPEM(p *pair) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.der})
}

func keyPEM(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

func kubeconfig(server string, ca, admin *pair) []byte {
	b := base64.StdEncoding.EncodeToString
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: cove-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: cove-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: cove-test
  context:
    cluster: cove-test
    user: cove-admin
current-context: cove-test
`, server, b(certPEM(ca)), b(certPEM(admin)), b(keyPEM(admin.key))))
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
