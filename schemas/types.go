package schemas

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// tag is the constructor of a parsed type.
type tag uint8

const (
	tString tag = iota + 1
	tBool
	tInt32
	tInt64
	tFloat32
	tFloat64
	tTimestamp
	tDate
	tJSON
	tBinary
	tDecimal
	tList
	tMap
	tStruct
)

var scalarTags = map[Kind]tag{String: tString, Bool: tBool, Int32: tInt32, Int64: tInt64,
	Float32: tFloat32, Float64: tFloat64, Timestamp: tTimestamp, Date: tDate, JSON: tJSON, Binary: tBinary}

// maxPrecision is the most digits a decimal may have: what Arrow's Decimal128
// and every engine's DECIMAL hold.
const maxPrecision = 38

// maxDepth bounds how deeply types nest, so a hostile schema cannot make the
// recursive parser, converter or builder run out of stack.
const maxDepth = 32

// typ is a parsed Kind: a tree of type constructors.
type typ struct {
	tag         tag
	prec, scale int32   // decimal
	elem        *typ    // list element, map value
	fields      []field // struct fields, in declared order
	canon       Kind    // canonical spelling, without spaces
}

type field struct {
	name string
	typ  *typ
}

const typeList = "string, bool, int32, int64, float32, float64, timestamp, date, json, binary, " +
	"decimal(p,s), list<T>, map<string,T>, struct<name:T,...>"

// Parsed types are cached per Kind string, process-wide, rather than inside a
// Schema: Schema is a plain value that other packages copy, mutate and
// compare (the registry compares tables with fmt.Sprint), so a hidden cache
// field would go stale or make equal schemas look different. Kind strings
// are few (one per declared column type), so the cache is small; it stops
// growing at maxCached entries, after which new kinds are parsed every time.
var (
	typeCache sync.Map // Kind → *typ
	cached    atomic.Int64
)

const maxCached = 4096

// parseKind returns k's type tree, parsing it on first use.
func parseKind(k Kind) (*typ, error) {
	if t, ok := typeCache.Load(k); ok {
		return t.(*typ), nil
	}
	p := &typeParser{s: string(k)}
	t, err := p.parse()
	if err != nil {
		return nil, err
	}
	if cached.Load() < maxCached {
		if _, loaded := typeCache.LoadOrStore(k, t); !loaded {
			cached.Add(1)
		}
	}
	return t, nil
}

// mustParse is parseKind for a schema that is known to be valid.
func mustParse(k Kind) *typ {
	t, err := parseKind(k)
	if err != nil {
		panic(fmt.Sprintf("BUG: invalid kind %q: %v", k, err))
	}
	return t
}

// typeParser parses the type syntax: a scalar name, decimal(p,s), list<T>,
// map<string,T> or struct<name:T,...>, with spaces allowed between tokens.
type typeParser struct {
	s     string
	pos   int
	depth int
}

func (p *typeParser) parse() (*typ, error) {
	t, err := p.typ()
	if err == nil {
		p.space()
		if p.pos < len(p.s) {
			err = p.errorf("unexpected %q after the type", p.s[p.pos:])
		}
	}
	if err != nil {
		if bare := strings.TrimSpace(p.s); bare == "" || ValidName(bare) {
			return nil, err // a bare name: the error says it all
		}
		return nil, fmt.Errorf("invalid type %q: %w", p.s, err)
	}
	return t, nil
}

func (p *typeParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: "+format, append([]any{p.pos}, args...)...)
}

func (p *typeParser) space() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n' || p.s[p.pos] == '\r') {
		p.pos++
	}
}

// ident reads a name: letters, digits and underscores.
func (p *typeParser) ident() string {
	p.space()
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			break
		}
		p.pos++
	}
	return p.s[start:p.pos]
}

// expect consumes the punctuation c.
func (p *typeParser) expect(c byte) error {
	p.space()
	if p.pos >= len(p.s) || p.s[p.pos] != c {
		return p.errorf("expected %q", c)
	}
	p.pos++
	return nil
}

func (p *typeParser) typ() (*typ, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, p.errorf("types nest more than %d deep", maxDepth)
	}
	start := p.pos
	name := p.ident()
	if tg, ok := scalarTags[Kind(name)]; ok {
		return &typ{tag: tg, canon: Kind(name)}, nil
	}
	p.space()
	next := byte(0)
	if p.pos < len(p.s) {
		next = p.s[p.pos]
	}
	switch {
	case name == "decimal" && next == '(':
		return p.decimal()
	case name == "list" && next == '<':
		return p.list()
	case name == "map" && next == '<':
		return p.mapType()
	case name == "struct" && next == '<':
		return p.structType()
	case name == "decimal":
		return nil, fmt.Errorf("unknown type %q (decimal needs a precision and scale, like decimal(18,2))", name)
	case name == "list" || name == "map" || name == "struct":
		return nil, fmt.Errorf("unknown type %q (%s needs its element types, like list<string>, map<string,int64> or struct<a:int32>)", name, name)
	}
	if name == "" {
		p.pos = start
		name = strings.TrimSpace(p.s[start:])
		if i := strings.IndexAny(name, "<>(),: "); i > 0 {
			name = name[:i]
		}
	}
	return nil, fmt.Errorf("unknown type %q (one of %s)", name, typeList)
}

func (p *typeParser) number() (int32, error) {
	p.space()
	start := p.pos
	for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		p.pos++
	}
	n, err := strconv.ParseInt(p.s[start:p.pos], 10, 32)
	if err != nil {
		p.pos = start
		return 0, p.errorf("expected a number")
	}
	return int32(n), nil
}

func (p *typeParser) decimal() (*typ, error) {
	t := &typ{tag: tDecimal}
	var err error
	if err = p.expect('('); err == nil {
		if t.prec, err = p.number(); err == nil {
			if err = p.expect(','); err == nil {
				if t.scale, err = p.number(); err == nil {
					err = p.expect(')')
				}
			}
		}
	}
	switch {
	case err != nil:
		return nil, err
	case t.prec < 1 || t.prec > maxPrecision:
		return nil, fmt.Errorf("decimal precision %d is out of range (1 to %d)", t.prec, maxPrecision)
	case t.scale > t.prec:
		return nil, fmt.Errorf("decimal scale %d is larger than its precision %d", t.scale, t.prec)
	}
	t.canon = Kind(fmt.Sprintf("decimal(%d,%d)", t.prec, t.scale))
	return t, nil
}

func (p *typeParser) list() (*typ, error) {
	p.pos++ // '<'
	elem, err := p.typ()
	if err != nil {
		return nil, err
	}
	if err := p.expect('>'); err != nil {
		return nil, err
	}
	return &typ{tag: tList, elem: elem, canon: "list<" + elem.canon + ">"}, nil
}

func (p *typeParser) mapType() (*typ, error) {
	p.pos++ // '<'
	key, err := p.typ()
	if err != nil {
		return nil, err
	}
	if key.tag != tString {
		return nil, fmt.Errorf("map keys must be string, not %s (JSON object keys are strings)", key.canon)
	}
	if err := p.expect(','); err != nil {
		return nil, err
	}
	val, err := p.typ()
	if err != nil {
		return nil, err
	}
	if err := p.expect('>'); err != nil {
		return nil, err
	}
	return &typ{tag: tMap, elem: val, canon: "map<string," + val.canon + ">"}, nil
}

func (p *typeParser) structType() (*typ, error) {
	p.pos++ // '<'
	t := &typ{tag: tStruct}
	var canon strings.Builder
	canon.WriteString("struct<")
	seen := map[string]bool{}
	for {
		name := p.ident()
		if !ValidName(name) {
			return nil, p.errorf("expected a struct field name (letters, digits, _)")
		}
		if seen[strings.ToLower(name)] {
			return nil, fmt.Errorf("duplicate struct field %q (names are case-insensitive in SQL)", name)
		}
		seen[strings.ToLower(name)] = true
		if err := p.expect(':'); err != nil {
			return nil, err
		}
		ft, err := p.typ()
		if err != nil {
			return nil, err
		}
		if len(t.fields) > 0 {
			canon.WriteByte(',')
		}
		canon.WriteString(name + ":" + string(ft.canon))
		t.fields = append(t.fields, field{name: name, typ: ft})
		p.space()
		if p.pos < len(p.s) && p.s[p.pos] == ',' {
			p.pos++
			continue
		}
		if err := p.expect('>'); err != nil {
			return nil, err
		}
		break
	}
	canon.WriteByte('>')
	t.canon = Kind(canon.String())
	return t, nil
}
