package main

import (
	"errors"
	"strings"
	"time"
)

// entry is one parsed access-log line.
type entry struct {
	remoteAddr             string
	ts                     time.Time
	method, path, protocol string // empty if the request line is not "METHOD PATH PROTOCOL"
	status, bytes          int64
	referer, userAgent     string // empty in the common log format
}

// parseLine parses the combined log format
//
//	127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326 "http://ref/" "Mozilla/4.08"
//
// and the common log format (the same without referer and user agent). It
// works on the bytes, without regular expressions: inside wasm every loop
// iteration counts.
func parseLine(line string) (entry, error) {
	var e entry
	p := parser{s: strings.TrimRight(line, " \r\n")}
	e.remoteAddr = p.word()
	p.word() // ident
	p.word() // user
	ts, ok := p.bracketed()
	if !ok {
		return e, errors.New("no [time]")
	}
	if e.ts, ok = parseLogTime(ts); !ok {
		return e, errors.New("bad time " + ts)
	}
	req, ok := p.quoted()
	if !ok {
		return e, errors.New("no quoted request")
	}
	e.method, e.path, e.protocol = splitRequest(req)
	if e.status, ok = number(p.word()); !ok || e.status < 100 || e.status > 999 {
		return e, errors.New("bad status")
	}
	if b := p.word(); b != "-" {
		if e.bytes, ok = number(b); !ok {
			return e, errors.New("bad byte count")
		}
	}
	if p.done() {
		return e, nil // common log format
	}
	if e.referer, ok = p.quoted(); !ok {
		return e, errors.New("bad referer")
	}
	if e.userAgent, ok = p.quoted(); !ok {
		return e, errors.New("bad user agent")
	}
	return e, nil
}

type parser struct{ s string }

func (p *parser) done() bool { return strings.TrimLeft(p.s, " ") == "" }

// word returns the text up to the next space.
func (p *parser) word() string {
	p.s = strings.TrimLeft(p.s, " ")
	i := strings.IndexByte(p.s, ' ')
	if i < 0 {
		i = len(p.s)
	}
	w := p.s[:i]
	p.s = p.s[i:]
	return w
}

func (p *parser) bracketed() (string, bool) {
	p.s = strings.TrimLeft(p.s, " ")
	if !strings.HasPrefix(p.s, "[") {
		return "", false
	}
	i := strings.IndexByte(p.s, ']')
	if i < 0 {
		return "", false
	}
	v := p.s[1:i]
	p.s = p.s[i+1:]
	return v, true
}

// quoted reads a "..." field; Nginx escapes quotes inside as \".
func (p *parser) quoted() (string, bool) {
	p.s = strings.TrimLeft(p.s, " ")
	if !strings.HasPrefix(p.s, `"`) {
		return "", false
	}
	escaped := false
	for i := 1; i < len(p.s); i++ {
		switch {
		case p.s[i] == '\\':
			escaped = true
			i++
		case p.s[i] == '"':
			v := p.s[1:i]
			p.s = p.s[i+1:]
			if escaped {
				v = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(v)
			}
			return v, true
		}
	}
	return "", false
}

// splitRequest splits "GET /path HTTP/1.1"; anything else ("-", junk from a
// scanner) leaves the parts empty.
func splitRequest(req string) (method, path, protocol string) {
	i := strings.IndexByte(req, ' ')
	j := strings.LastIndexByte(req, ' ')
	if i <= 0 || j <= i || !strings.HasPrefix(req[j+1:], "HTTP/") {
		return "", "", ""
	}
	return req[:i], req[i+1 : j], req[j+1:]
}

func number(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

var months = map[string]time.Month{"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
	"Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12}

// parseLogTime parses "10/Oct/2000:13:55:36 -0700" by position.
func parseLogTime(s string) (time.Time, bool) {
	if len(s) != 26 || s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' || s[17] != ':' || s[20] != ' ' {
		return time.Time{}, false
	}
	mon, ok := months[s[3:6]]
	day, ok1 := number(s[0:2])
	year, ok2 := number(s[7:11])
	hh, ok3 := number(s[12:14])
	mm, ok4 := number(s[15:17])
	ss, ok5 := number(s[18:20])
	zh, ok6 := number(s[22:24])
	zm, ok7 := number(s[24:26])
	if !(ok && ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || s[21] != '+' && s[21] != '-' {
		return time.Time{}, false
	}
	offset := int(zh*3600 + zm*60)
	if s[21] == '-' {
		offset = -offset
	}
	t := time.Date(int(year), mon, int(day), int(hh), int(mm), int(ss), 0, time.FixedZone("", offset))
	return t.UTC(), true
}
