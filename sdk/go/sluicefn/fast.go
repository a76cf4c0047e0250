package sluicefn

import "time"

// The fast path. The host writes every envelope as
//
//	{"stream":S,"partition":P,"offset":O,"key":K[,"key_base64":B],"timestamp":"2006-01-02T15:04:05.000000000Z","headers":H,"data":D}
//
// so the decoder matches the literal parts and reads the values in place.
// Inside wasm every loop iteration costs (wazero checks for a timeout at each
// loop header), so this avoids loops: the stream name is compared with the
// previous one at once, the timestamp has a fixed width and is parsed when
// asked for, the headers and the data are not looked at.

func hasLit(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

func (d *decoder) decodeFast(line []byte, r *Record) bool {
	i := len(`{"stream":`)
	if !hasLit(line, 0, `{"stream":`) || len(line) < 2 || line[len(line)-1] != '}' {
		return false
	}
	if i = d.fastStream(line, i, r); i < 0 {
		return false
	}
	var n int64
	if n, i = fastInt(line, i, `,"partition":`); i < 0 {
		return false
	}
	r.Partition = int32(n)
	if r.Offset, i = fastInt(line, i, `,"offset":`); i < 0 {
		return false
	}
	if i = fastKey(line, i, r); i < 0 {
		return false
	}
	const tsLen = len(`"2006-01-02T15:04:05.000000000Z"`)
	if !hasLit(line, i, `,"timestamp":`) {
		return false
	}
	i += len(`,"timestamp":`)
	if len(line)-i < tsLen || line[i+tsLen-1] != '"' {
		return false
	}
	r.ts = line[i : i+tsLen]
	i += tsLen
	if !hasLit(line, i, `,"headers":`) {
		return false
	}
	i += len(`,"headers":`)
	end := skipValue(line, i)
	if end < 0 || !hasLit(line, end, `,"data":`) {
		return false
	}
	r.headers = line[i:end]
	r.Data = line[end+len(`,"data":`) : len(line)-1]
	return len(r.Data) > 0
}

func (d *decoder) fastStream(line []byte, i int, r *Record) int {
	if n := len(d.streamRaw); n > 0 && hasLit(line, i, d.streamRaw) && len(line) > i+n && line[i+n] == ',' {
		r.Stream = d.stream
		return i + n
	}
	end := skipString(line, i)
	if end < 0 {
		return -1
	}
	var ok bool
	if r.Stream, ok = d.internStream(line[i:end]); !ok {
		return -1
	}
	return end
}

// fastInt reads lit then a decimal integer.
func fastInt(line []byte, i int, lit string) (int64, int) {
	if !hasLit(line, i, lit) {
		return 0, -1
	}
	i += len(lit)
	start := i
	for i < len(line) && (line[i] >= '0' && line[i] <= '9' || line[i] == '-') {
		i++
	}
	n, ok := parseInt(line[start:i])
	if !ok {
		return 0, -1
	}
	return n, i
}

func fastKey(line []byte, i int, r *Record) int {
	if !hasLit(line, i, `,"key":`) {
		return -1
	}
	i += len(`,"key":`)
	if hasLit(line, i, "null") {
		return i + 4
	}
	end := skipString(line, i)
	if end < 0 {
		return -1
	}
	var ok bool
	if r.Key, ok = parseKey(line[i:end]); !ok {
		return -1
	}
	if !hasLit(line, end, `,"key_base64":`) {
		return end
	}
	i = end + len(`,"key_base64":`)
	if end = skipString(line, i); end < 0 {
		return -1
	}
	if r.Key, ok = parseKeyBase64(line[i:end]); !ok {
		return -1
	}
	return end
}

// parseTime parses the host's fixed-width "2006-01-02T15:04:05.000000000Z"
// without loops and anything else RFC 3339 through the time package.
func parseTime(raw []byte) (time.Time, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return time.Time{}, false
	}
	s := raw[1 : len(raw)-1]
	if t, ok := parseFixedUTC(s); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	return t.UTC(), err == nil
}

func parseFixedUTC(s []byte) (time.Time, bool) {
	if len(s) != 30 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[29] != 'Z' {
		return time.Time{}, false
	}
	bad := false
	d := func(k int) int64 {
		c := s[k] - '0'
		if c > 9 {
			bad = true
		}
		return int64(c)
	}
	y := d(0)*1000 + d(1)*100 + d(2)*10 + d(3)
	mo, day := d(5)*10+d(6), d(8)*10+d(9)
	h, mi, sec := d(11)*10+d(12), d(14)*10+d(15), d(17)*10+d(18)
	ns := d(20)*1e8 + d(21)*1e7 + d(22)*1e6 + d(23)*1e5 + d(24)*1e4 + d(25)*1e3 + d(26)*100 + d(27)*10 + d(28)
	if bad || mo < 1 || mo > 12 || day < 1 || day > 31 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	unix := daysFromCivil(y, mo, day)*86400 + h*3600 + mi*60 + sec
	return time.Unix(unix, ns).UTC(), true
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d (proleptic
// Gregorian; Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
