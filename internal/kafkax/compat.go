package kafkax

import (
	"encoding/binary"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfake answers a few requests in ways some real clients cannot take, where
// Apache Kafka brokers answer otherwise. compatConn rewrites those answers
// on the wire, between kfake and the client, into what a Kafka broker
// sends:
//
//   - ApiVersions, SaslHandshake (with SASL on): librdkafka (kcat,
//     confluent-kafka-python/go/dotnet, node-rdkafka) decides whether a
//     broker can do SASL SCRAM from its ApiVersions answer, and requires
//     SaslHandshake version 0 to be listed ("SASL Handshake not supported by
//     broker (required by mechanism SCRAM-SHA-256)"). kfake lists only
//     version 1 (it does not implement v0's unframed authentication). Every
//     Kafka broker lists 0-1 and clients use 1 when it is listed, so the
//     answer lists SaslHandshake from 0; a client that did send a v0
//     handshake would still be refused by kfake.
//   - ApiVersions, supported features: kfake lists features whose minimum
//     version is 0 (group.version, transaction.version, ...). Java clients
//     before 3.8 refuse such an answer and cannot connect at all ("Expected
//     minValue >= 1, maxValue >= 1 and maxValue >= minValue, but received
//     minValue: 0"). KIP-1022 made v4 the version that may carry them: a
//     Kafka broker leaves them out of its v0-v3 answers, and so does this.
//   - DescribeTopicPartitions: kfake leaves each partition's
//     EligibleLeaderReplicas and LastKnownELR null (both are nullable);
//     Kafka brokers send empty lists, and Java's Admin.describeTopics (3.8+,
//     which uses this request) dereferences them (NullPointerException).
//     The answer has empty lists instead of nulls.
//
// A response is rewritten only if it decodes and is under
// maxRewrittenResponse; any other passes through as kfake wrote it.

// maxRewrittenResponse bounds the response a compatConn gathers in memory
// to rewrite. DescribeTopicPartitions answers at most 2000 partitions (a
// few tens of bytes each), ApiVersions a hundred keys.
const maxRewrittenResponse = 1 << 20

// compatListener wraps each connection it accepts in a compatConn.
type compatListener struct {
	net.Listener
	sasl bool // SASL is on: list SaslHandshake from version 0
}

func (l compatListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &compatConn{Conn: c, sasl: l.sasl, pending: map[int32]pendingReq{}}, nil
}

// pendingReq is a request whose response is to be rewritten.
type pendingReq struct {
	key     int16
	version int16
}

// compatConn watches the requests read from a client for the keys it
// rewrites (rewrites), and rewrites the matching responses written back.
// Both directions are a stream of frames: a big-endian int32 size, then
// that many bytes; a request starts with its key (int16), version (int16)
// and correlation ID (int32), a response with its correlation ID.
type compatConn struct {
	net.Conn
	sasl bool

	mu      sync.Mutex
	pending map[int32]pendingReq // by correlation ID: requests awaiting their rewritten answer

	// Read side (the goroutine reading requests).
	rhead [12]byte // size, key, version, correlation ID
	rn    int      // bytes of rhead filled
	rskip int64    // bytes of the current request left to pass

	// Write side (the goroutine writing responses).
	whead [8]byte // size, correlation ID
	wn    int
	wskip int64      // bytes of the current response left to pass through
	wbuf  []byte     // a response being gathered (after whead)
	wwant int64      // bytes of it still to gather
	wreq  pendingReq // its request
	out   []byte
}

// rewrites are the request keys whose responses compatConn rewrites.
var rewrites = map[int16]func(c *compatConn, body []byte, version int16) ([]byte, bool){
	int16(kmsg.ApiVersions):             (*compatConn).rewriteApiVersions,
	int16(kmsg.DescribeTopicPartitions): (*compatConn).rewriteDescribeTopicPartitions,
}

func (c *compatConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.observe(p[:n])
	return n, err
}

// observe follows request frames through b.
func (c *compatConn) observe(b []byte) {
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
		if _, ok := rewrites[key]; ok {
			c.mu.Lock()
			if len(c.pending) < 64 { // a client does not pipeline more; kfake closes on garbage
				c.pending[corr] = pendingReq{key: key, version: version}
			}
			c.mu.Unlock()
		}
	}
}

func (c *compatConn) Write(p []byte) (int, error) {
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
				c.out = append(c.out, c.rewrite(c.whead, c.wbuf, c.wreq)...)
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
			req, ok := c.pending[corr]
			delete(c.pending, corr)
			c.mu.Unlock()
			rest := max(size-4, 0)
			if ok && rest > 0 && rest < maxRewrittenResponse {
				c.wwant, c.wreq = rest, req
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

// rewrite returns the frame of a response to req (head: size and
// correlation ID; body after them), rewritten, or as it was if unchanged.
func (c *compatConn) rewrite(head [8]byte, body []byte, req pendingReq) []byte {
	hdr := 0                                // the response header's tagged fields, after the correlation ID
	if req.key != int16(kmsg.ApiVersions) { // ApiVersions always has header v0
		r := kmsg.ResponseForKey(req.key)
		r.SetVersion(req.version)
		if r.IsFlexible() {
			if hdr = taggedFieldsLen(body); hdr < 0 {
				return append(head[:], body...)
			}
		}
	}
	nb, changed := rewrites[req.key](c, body[hdr:], req.version)
	if !changed {
		return append(head[:], body...)
	}
	out := binary.BigEndian.AppendUint32(nil, 0)
	out = append(out, head[4:]...)
	out = append(out, body[:hdr]...)
	out = append(out, nb...)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// taggedFieldsLen is the length of the tagged fields that start b, or -1.
func taggedFieldsLen(b []byte) int {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return -1
	}
	off := k
	for range n {
		if _, k = binary.Uvarint(b[off:]); k <= 0 {
			return -1
		}
		off += k
		size, k := binary.Uvarint(b[off:])
		if k <= 0 || size > uint64(len(b)-off-k) {
			return -1
		}
		off += k + int(size)
	}
	return off
}

// rewriteApiVersions lists SaslHandshake from version 0 (with SASL on)
// and, in answers before v4, drops supported features whose minimum
// version is 0.
func (c *compatConn) rewriteApiVersions(body []byte, version int16) ([]byte, bool) {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	if err := resp.ReadFrom(body); err != nil || resp.ErrorCode != 0 {
		return nil, false
	}
	changed := false
	for i := range resp.ApiKeys {
		if k := &resp.ApiKeys[i]; c.sasl && k.ApiKey == int16(kmsg.SASLHandshake) && k.MinVersion > 0 {
			k.MinVersion, changed = 0, true
		}
	}
	if version < 4 {
		kept := resp.SupportedFeatures[:0]
		for _, f := range resp.SupportedFeatures {
			if f.MinVersion >= 1 {
				kept = append(kept, f)
			}
		}
		changed = changed || len(kept) < len(resp.SupportedFeatures)
		resp.SupportedFeatures = kept
	}
	if !changed {
		return nil, false
	}
	return resp.AppendTo(nil), true
}

// rewriteDescribeTopicPartitions makes null ELR lists empty.
func (c *compatConn) rewriteDescribeTopicPartitions(body []byte, version int16) ([]byte, bool) {
	resp := kmsg.NewPtrDescribeTopicPartitionsResponse()
	resp.Version = version
	if err := resp.ReadFrom(body); err != nil {
		return nil, false
	}
	changed := false
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			p := &resp.Topics[i].Partitions[j]
			if p.EligibleLeaderReplicas == nil {
				p.EligibleLeaderReplicas, changed = []int32{}, true
			}
			if p.LastKnownELR == nil {
				p.LastKnownELR, changed = []int32{}, true
			}
		}
	}
	if !changed {
		return nil, false
	}
	return resp.AppendTo(nil), true
}
