package e2e

import (
	"testing"

	"github.com/sluice-dev/sluice/internal/testcert"
)

// SelfSignedCert writes a self-signed certificate for 127.0.0.1 and
// localhost (its own CA) and its key as PEM files in a temporary directory.
func SelfSignedCert(t testing.TB) (certFile, keyFile string) {
	c := testcert.New(t)
	return c.CertFile, c.KeyFile
}
