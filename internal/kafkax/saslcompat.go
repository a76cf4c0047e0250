package kafkax

import (
	"encoding/binary"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// librdkafka (kcat, confluent-kafka-python/go/dotnet, node-rdkafka) decides
// whether a broker can do SASL SCRAM from its ApiVersions answer, and
// requires SaslHandshake version 0 to be listed ("SASL Handshake not
// supported by broker (required by mechanism SCRAM-SHA-256)"). kfake lists
// only version 1 (it does not implement v0's unframed authentication), so
// no librdkafka client could log in. Every Kafka broker lists 0-1 and
// clients use 1 when it is listed, so saslCompatConn rewrites kfake's
// ApiVersions answers to list SaslHandshake from 0; a client that did
// send a v0 handshake would still be refused by kfake.

// saslCompatListener wraps each connection it accepts in a saslCompatConn.
type saslCompatListener struct{ net.Listener }

func (l saslCompatListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &saslCompatConn{Conn: c, apiVersions: map[int32]int16{}}, nil
}

// saslCompatConn watches the requests read from a client for ApiVersions,
// and rewrites the matching responses written back. Both directions are a
// stream of frames: a big-endian int32 size, then that many bytes; a
// request starts with its key (int16), version (int16) and correlation ID
// (int32), a response with its correlation ID.
type saslCompatConn struct {
	net.Conn

	mu          sync.Mutex
	apiVersions map[int32]int16 // correlation ID => version of ApiVersions requests awaiting their answer

	// Read side (the goroutine reading requests).
	rhead [12]byte // size, key, version, correlation ID
	rn    int      // bytes of rhead filled
	rskip int64    // bytes of the current request left to pass

	// Write side (the goroutine writing responses).
	whead [8]byte // size, correlation ID
	wn    int
	wskip int64  // bytes of the current response left to pass through
	wbuf  []byte // an ApiVersions response being gathered (after whead)
	wwant int64  // bytes of it still to gather
	wver  int16  // its request's version
	out   []byte
}

func (c *saslCompatConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.observe(p[:n])
	return n, err
}

// observe follows request frames through b.
func (c *saslCompatConn) observe(b []byte) {
	for len(b) > 0 {
		if c.rskip > 0 {
			k := min(int64(len(b)), c.rskip)
			c.rskip -= k
			b = b[k:]
			continue
		}
		k := copy(c.rhead[c.rn:], b)
		c.rn += k
		b = b[k:]
		if c.rn < len(c.rhead) {
			return
		}
		c.rn = 0
		size := int64(int32(binary.BigEndian.Uint32(c.rhead[0:])))
		key := int16(binary.BigEndian.Uint16(c.rhead[4:]))
		version := int16(binary.BigEndian.Uint16(c.rhead[6:]))
		corr := int32(binary.BigEndian.Uint32(c.rhead[8:]))
		c.rskip = max(size-8, 0)
		if key == int16(kmsg.ApiVersions) {
			c.mu.Lock()
			if len(c.apiVersions) < 64 { // a client does not pipeline more; kfake closes on garbage
				c.apiVersions[corr] = version
			}
			c.mu.Unlock()
		}
	}
}

func (c *saslCompatConn) Write(p []byte) (int, error) {
	c.out = c.out[:0]
	b := p
	for len(b) > 0 {
		switch {
		case c.wskip > 0:
			k := min(int64(len(b)), c.wskip)
			c.out = append(c.out, b[:k]...)
			c.wskip -= k
			b = b[k:]
		case c.wwant > 0:
			k := min(int64(len(b)), c.wwant)
			c.wbuf = append(c.wbuf, b[:k]...)
			c.wwant -= k
			b = b[k:]
			if c.wwant == 0 {
				c.out = append(c.out, rewriteApiVersions(c.whead, c.wbuf, c.wver)...)
				c.wbuf = nil
			}
		default:
			k := copy(c.whead[c.wn:], b)
			c.wn += k
			b = b[k:]
			if c.wn < len(c.whead) {
				continue
			}
			c.wn = 0
			size := int64(int32(binary.BigEndian.Uint32(c.whead[0:])))
			corr := int32(binary.BigEndian.Uint32(c.whead[4:]))
			c.mu.Lock()
			version, ok := c.apiVersions[corr]
			delete(c.apiVersions, corr)
			c.mu.Unlock()
			rest := max(size-4, 0)
			if ok && rest > 0 && rest < 1<<20 {
				c.wwant, c.wver = rest, version
				continue
			}
			c.out = append(c.out, c.whead[:]...)
			c.wskip = rest
		}
	}
	if len(c.out) > 0 {
		if _, err := c.Conn.Write(c.out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// rewriteApiVersions returns the frame of an ApiVersions response (head:
// size and correlation ID; body after them) listing SaslHandshake from
// version 0, or the frame as it was if it does not decode or has an error.
func rewriteApiVersions(head [8]byte, body []byte, version int16) []byte {
	orig := append(head[:], body...)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	if err := resp.ReadFrom(body); err != nil || resp.ErrorCode != 0 {
		return orig
	}
	changed := false
	for i := range resp.ApiKeys {
		if k := &resp.ApiKeys[i]; k.ApiKey == int16(kmsg.SASLHandshake) && k.MinVersion > 0 {
			k.MinVersion, changed = 0, true
		}
	}
	if !changed {
		return orig
	}
	out := binary.BigEndian.AppendUint32(nil, 0)
	out = append(out, head[4:]...)
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}
