package pgwire

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-dev/sluice/auth"
)

// KeyStore finds API keys by ID; *auth.Store is one.
type KeyStore interface {
	ByID(ctx context.Context, id string) (auth.Key, *auth.Principal, error)
}

const (
	scramMechanism = "SCRAM-SHA-256"
	// maxAuthMessageLen bounds the SASL messages of a client not yet
	// authenticated (SCRAM messages are a few hundred bytes).
	maxAuthMessageLen = 8 << 10
)

// authFailure is a refused authentication: what the client is told, and
// the reason, for the server's log only.
type authFailure struct {
	resp   *pgError
	reason error
}

func (f *authFailure) Error() string { return f.reason.Error() }

// passwordFailed is the one answer to every failed authentication, as
// Postgres gives it: it does not tell an unknown key from a wrong secret.
func passwordFailed(user, reason string, detail string) *authFailure {
	return &authFailure{
		resp:   &pgError{severity: "FATAL", code: codeInvalidPassword, msg: `password authentication failed for user "` + user + `"`, detail: detail},
		reason: errors.New(reason),
	}
}

// authenticate runs SASL SCRAM-SHA-256 (RFC 5802, RFC 7677) for user,
// the ID of a key, as Postgres does: AuthenticationSASL, the client's
// first message, AuthenticationSASLContinue, the client's proof,
// AuthenticationSASLFinal. The caller sends AuthenticationOk. An unknown,
// revoked or expired key goes through the same exchange with a made-up
// salt, so that the answers do not tell which keys exist.
func (s *Server) authenticate(ctx context.Context, be *pgproto3.Backend, user string) (*auth.Principal, *authFailure) {
	be.SetMaxBodyLen(maxAuthMessageLen)
	defer be.SetMaxBodyLen(maxMessageLen)

	be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}})
	if err := be.Flush(); err != nil {
		return nil, passwordFailed(user, "cannot send AuthenticationSASL: "+err.Error(), "")
	}
	be.SetAuthType(pgproto3.AuthTypeSASL)
	msg, err := be.Receive()
	if err != nil {
		return nil, passwordFailed(user, "reading SASLInitialResponse: "+err.Error(), "")
	}
	init, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok {
		return nil, passwordFailed(user, fmt.Sprintf("expected SASLInitialResponse, got %T", msg), "")
	}
	if init.AuthMechanism != scramMechanism {
		return nil, passwordFailed(user, fmt.Sprintf("client chose SASL mechanism %q", init.AuthMechanism),
			"sluice offers only "+scramMechanism+" (no channel binding)")
	}
	first, err := parseClientFirst(string(init.Data))
	if err != nil {
		detail := ""
		if errors.Is(err, errChannelBinding) {
			detail = "sluice does not support SCRAM channel binding (SCRAM-SHA-256-PLUS): connect with channel_binding=prefer or disable"
		}
		return nil, passwordFailed(user, "client-first-message: "+err.Error(), detail)
	}

	key, principal, err := s.Keys.ByID(ctx, user)
	cred := key.SCRAM
	var unknown error
	switch {
	case err != nil:
		unknown = err
	case principal == nil:
		unknown = errors.New("the key has no principal")
	case cred.Iterations <= 0 || len(cred.Salt) == 0 || len(cred.SaltedPassword) == 0:
		unknown = errors.New("the key has no SCRAM credential")
	}
	if unknown != nil {
		cred = s.mockCredential(user)
	}

	nonce := first.nonce + newNonce()
	serverFirst := "r=" + nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) + ",i=" + strconv.Itoa(cred.Iterations)
	be.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)})
	if err := be.Flush(); err != nil {
		return nil, passwordFailed(user, "cannot send AuthenticationSASLContinue: "+err.Error(), "")
	}
	be.SetAuthType(pgproto3.AuthTypeSASLContinue)
	msg, err = be.Receive()
	if err != nil {
		return nil, passwordFailed(user, "reading SASLResponse: "+err.Error(), "")
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return nil, passwordFailed(user, fmt.Sprintf("expected SASLResponse, got %T", msg), "")
	}
	withoutProof, proof, err := parseClientFinal(string(resp.Data), first.gs2Header, nonce)
	if err != nil {
		return nil, passwordFailed(user, "client-final-message: "+err.Error(), "")
	}
	if unknown != nil {
		return nil, passwordFailed(user, unknown.Error(), "")
	}
	authMessage := first.bare + "," + serverFirst + "," + withoutProof
	sig, ok := cred.Verify([]byte(authMessage), proof)
	if !ok {
		return nil, passwordFailed(user, "wrong client proof (wrong key)", "")
	}
	be.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte("v=" + base64.StdEncoding.EncodeToString(sig))})

	if !principal.Can("query", "") {
		return nil, &authFailure{
			resp: &pgError{severity: "FATAL", code: codeInvalidAuthorization,
				msg:  fmt.Sprintf("key %s may not query: its scopes are %v", user, principal.Scopes()),
				hint: "Use a key with a query:TABLE, query:* or admin scope."},
			reason: fmt.Errorf("the key has no query scope (scopes %v)", principal.Scopes()),
		}
	}
	return principal, nil
}

// mockCredential is the made-up SCRAM credential of a user with no key:
// its salt is the same for every attempt on that user, as a real key's
// is, and no secret matches it.
func (s *Server) mockCredential(user string) auth.SCRAM {
	s.mockOnce.Do(func() {
		s.mockSecret = make([]byte, 32)
		rand.Read(s.mockSecret)
	})
	h := hmac.New(sha256.New, s.mockSecret)
	h.Write([]byte(user))
	sum := h.Sum(nil)
	return auth.SCRAM{Salt: sum[:16], Iterations: auth.SCRAMIterations, SaltedPassword: sum[16:]}
}

// newNonce returns the server's part of the SCRAM nonce.
func newNonce() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

var errChannelBinding = errors.New("the client requires channel binding (gs2 header p=), which sluice does not offer")

// clientFirst is a parsed client-first-message.
type clientFirst struct {
	gs2Header string // "n,," or "y,,"
	bare      string // client-first-message-bare, part of the AuthMessage
	nonce     string
}

// parseClientFirst parses a client-first-message:
//
//	gs2-header client-first-message-bare
//	gs2-header = ("n" / "y" / "p=" cb-name) "," [authzid] ","
//	bare       = [reserved-mext ","] "n=" saslname "," "r=" c-nonce ["," extensions]
//
// The user name in it is ignored (Postgres clients send an empty one; the
// startup message's user is the one authenticated).
func parseClientFirst(msg string) (clientFirst, error) {
	var f clientFirst
	switch {
	case strings.HasPrefix(msg, "p="):
		return f, errChannelBinding
	case strings.HasPrefix(msg, "n,"), strings.HasPrefix(msg, "y,"):
	default:
		return f, fmt.Errorf("malformed gs2 header in %q", truncate(msg))
	}
	rest := msg[2:]
	if strings.HasPrefix(rest, "a=") {
		return f, errors.New("an authorization identity (a=) is not supported")
	}
	if !strings.HasPrefix(rest, ",") {
		return f, fmt.Errorf("malformed gs2 header in %q", truncate(msg))
	}
	f.gs2Header, f.bare = msg[:3], rest[1:]
	attrs := strings.Split(f.bare, ",")
	if strings.HasPrefix(attrs[0], "m=") {
		return f, errors.New("the client requires an unsupported SCRAM extension (m=)")
	}
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return f, fmt.Errorf("want n=USER,r=NONCE after the gs2 header, got %q", truncate(f.bare))
	}
	f.nonce = attrs[1][2:]
	if f.nonce == "" || !printable(f.nonce) {
		return f, errors.New("the client nonce is empty or not printable")
	}
	return f, nil // extensions after the nonce are ignored, as Postgres does
}

// parseClientFinal parses a client-final-message,
//
//	"c=" base64(gs2-header) "," "r=" nonce ["," extensions] "," "p=" base64(proof)
//
// checking the channel binding and the nonce, and returns the message
// without the proof (part of the AuthMessage) and the proof.
func parseClientFinal(msg, gs2Header, nonce string) (withoutProof string, proof []byte, err error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return "", nil, fmt.Errorf("no proof in %q", truncate(msg))
	}
	withoutProof = msg[:i]
	proof, err = base64.StdEncoding.DecodeString(msg[i+3:])
	if err != nil {
		return "", nil, fmt.Errorf("malformed proof: %v", err)
	}
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || attrs[0] != "c="+base64.StdEncoding.EncodeToString([]byte(gs2Header)) {
		return "", nil, errors.New("channel binding attribute c= does not match the gs2 header")
	}
	if attrs[1] != "r="+nonce {
		return "", nil, errors.New("nonce does not match")
	}
	return withoutProof, proof, nil
}

// printable reports whether s holds only RFC 5802 printable characters
// (%x21-7E but ',').
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// logUser is user as the log shows it: a user name long enough to be a
// key's secret rather than its ID is not written down.
func logUser(user string) string {
	if len(user) >= auth.MinSecretLen {
		return fmt.Sprintf("(%d characters, not a key ID: maybe a key's secret, not logged)", len(user))
	}
	return user
}

func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
