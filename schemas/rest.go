package schemas

import (
	"bytes"
	"encoding/json"
	"slices"
)

// member is one field of the data on its way to the rest column.
type member struct {
	key  []byte // decoded, for sorting and finding duplicates
	qkey []byte // as written, quotes included (valid JSON)
	raw  []byte
	prio uint8 // of members with the same key, the highest prio wins, then the last
}

const (
	prioOwn    = iota // a member of the data's own rest object ("attrs": {...})
	prioField         // a data field that no column names
	prioMisfit        // a value that does not fit its column (Keep mode)
)

// split walks the JSON object data: a field named by a column goes to cols
// (the last of repeated fields wins), and, when s has a rest column, every
// other field is returned as a member for it. A field named like a metadata
// column cannot fill it (those come from the record's position), so it goes
// to the rest too. The data's own rest field, when an object, is merged in
// rather than nested; any other non-null value of it is kept under its name.
func (s *Schema) split(data []byte, cols [][]byte) []member {
	var rest []member
	var own []byte
	for q, raw := range members(data) {
		key := decodeKey(q)
		i := s.indexBytes(key)
		switch {
		case i >= 0 && s.RestColumn != "" && s.Columns[i].Name == s.RestColumn:
			own = raw
		case i >= 0 && metaColumns[string(key)] == "":
			cols[i] = raw
		case s.RestColumn != "":
			rest = append(rest, member{key: key, qkey: q, raw: raw, prio: prioField})
		}
	}
	switch {
	case own == nil || string(own) == "null":
	case own[0] == '{':
		for q, raw := range members(own) {
			rest = append(rest, member{key: decodeKey(q), qkey: q, raw: raw, prio: prioOwn})
		}
	default:
		rest = append(rest, member{key: []byte(s.RestColumn), qkey: []byte(`"` + s.RestColumn + `"`), raw: own, prio: prioField})
	}
	return rest
}

// indexBytes is index for a key not yet converted to a string.
func (s *Schema) indexBytes(key []byte) int {
	for i := range s.Columns {
		if s.Columns[i].Name == string(key) {
			return i
		}
	}
	return -1
}

// encodeRest writes the members as one compact JSON object, keys sorted (as
// json.Marshal of a map would), one member per key (see member.prio).
func encodeRest(ms []member) string {
	slices.SortStableFunc(ms, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	var buf bytes.Buffer
	buf.Grow(64 * len(ms))
	buf.WriteByte('{')
	for i := 0; i < len(ms); {
		best, j := i, i+1
		for ; j < len(ms) && bytes.Equal(ms[j].key, ms[i].key); j++ {
			if ms[j].prio >= ms[best].prio {
				best = j
			}
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(ms[best].qkey)
		buf.WriteByte(':')
		if bytes.ContainsAny(ms[best].raw, " \t\n\r") {
			json.Compact(&buf, ms[best].raw) // valid JSON: cannot fail
		} else {
			buf.Write(ms[best].raw)
		}
		i = j
	}
	buf.WriteByte('}')
	return cleanJSON(buf.Bytes())
}
