package fn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Stopping a guest on timeout.
//
// wazero can stop a running guest when its context ends
// (RuntimeConfig.WithCloseOnContextDone), but in wazero 1.12 the check it
// compiles in at every loop header is a call out of native code into Go. Go's
// wasm output enters a loop in every function prologue, so those exits make a
// warm Go function 5 to 7 times slower (about 7 µs of overhead per record
// instead of about 1.3 µs).
//
// sluice compiles its own check into the module instead. Before compiling,
// instrument rewrites the binary:
//
//   - it appends two mutable i32 globals that no original instruction can name
//     (their indices are past every existing one): the interrupt flag,
//     exported as "sluice:interrupt", and a countdown;
//   - at every function entry and after every `loop` it inserts a check that
//     decrements the countdown and, when it reaches zero (every
//     checkInterval-th time), traps if the flag is set, executes `memory.grow
//     0` and resets the countdown. The common case is a load, a store and a
//     branch;
//   - it moves the start section's function, if any, to the export
//     "sluice:start", so that the host can run it after arming the interrupt
//     (instantiation itself then runs no guest code); a module without memory
//     gets an empty one (memory.grow needs it).
//
// The `memory.grow 0` matters as much as the flag: wazero implements
// memory.grow as a call into Go, and the Go scheduler cannot preempt a
// goroutine while it runs compiled wasm. Without such a call now and then, a
// guest spinning in a loop would hold up every stop-the-world of the process
// (garbage collection included), and with it the goroutine that is to set the
// flag: the whole process would hang. (wazero's own checks call into Go at
// every loop header for the same reason; see wazero pull request #2525.)
//
// To stop the guest, the host sets the flag from another goroutine; the guest
// traps within checkInterval loop iterations or calls. A guest sleeping in
// poll_oneoff is woken by the instance's sleep function (see interrupter). The
// flag is never cleared: an interrupted instance is discarded.
//
// Custom sections named ".debug_*" are dropped, because their code offsets no
// longer hold; the "name" section refers to function indices and is kept.

const (
	interruptExport = "sluice:interrupt"
	startExport     = "sluice:start"
	// checkInterval is how many loop iterations and calls pass between two
	// calls into Go: about 10 µs of guest code at most, while each call costs
	// about 20 ns.
	checkInterval = 4096
)

// Section ids.
const (
	secCustom = 0
	secImport = 2
	secMemory = 5
	secGlobal = 6
	secExport = 7
	secStart  = 8
	secCode   = 10
)

// sectionOrder is the position a section id must keep in a module; a missing
// section is inserted before the first section ordered after it.
var sectionOrder = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

var wasmHeader = []byte{0, 'a', 's', 'm', 1, 0, 0, 0}

type section struct {
	id   byte
	body []byte
}

// moduleFacts is what instrument learns from a first pass over the sections.
type moduleFacts struct {
	globals  int // imported and defined: the index of the first added global
	memories int // imported and defined
	start    int // the start function, or -1
}

// instrument returns module with the interrupt checks described above. It
// checks what CheckModule checks, and does not validate the module beyond
// that and what it must read; the compiler does that afterwards.
func instrument(module []byte) ([]byte, error) {
	secs, err := readModule(module)
	if err != nil {
		return nil, err
	}
	if err := checkImports(secs); err != nil {
		return nil, err
	}
	facts, err := readFacts(secs)
	if err != nil {
		return nil, err
	}
	// The sections instrument adds if the module has none.
	missing := map[byte][]byte{
		secGlobal: addGlobals(nil),
		secExport: addExports(nil, facts),
	}
	if facts.memories == 0 {
		missing[secMemory] = []byte{1, 0x01, 0, 0} // one memory, min 0, max 0 pages
	}
	for _, s := range secs {
		delete(missing, s.id)
	}
	out := append([]byte(nil), wasmHeader...)
	for _, s := range secs {
		out = appendMissing(out, missing, sectionOrder[s.id])
		body := s.body
		switch s.id {
		case secGlobal:
			body = addGlobals(body)
		case secExport:
			if body, err = addExportsChecked(body, facts); err != nil {
				return nil, err
			}
		case secStart:
			continue
		case secCode:
			if body, err = instrumentCode(body, uint32(facts.globals)); err != nil {
				return nil, fmt.Errorf("cannot instrument code section: %w", err)
			}
		case secCustom:
			if isDebugSection(body) {
				continue
			}
		}
		out = appendSection(out, s.id, body)
	}
	return appendMissing(out, missing, len(sectionOrder)+1), nil
}

// appendMissing appends, in order, the missing sections ordered before
// order, and forgets them.
func appendMissing(out []byte, missing map[byte][]byte, order int) []byte {
	if order == 0 { // custom sections go anywhere
		return out
	}
	for _, id := range []byte{secMemory, secGlobal, secExport} {
		if body, ok := missing[id]; ok && sectionOrder[id] < order {
			out = appendSection(out, id, body)
			delete(missing, id)
		}
	}
	return out
}

func readFacts(secs []section) (moduleFacts, error) {
	f := moduleFacts{start: -1}
	for _, s := range secs {
		r := reader{b: s.body}
		switch s.id {
		case secImport:
			imports, err := readImports(s.body)
			if err != nil {
				return f, err
			}
			for _, im := range imports {
				switch im.kind {
				case 0x02:
					f.memories++
				case 0x03:
					f.globals++
				}
			}
		case secGlobal:
			f.globals += int(r.u32())
		case secMemory:
			f.memories += int(r.u32())
		case secStart:
			f.start = int(r.u32())
		}
		if r.err != nil {
			return f, fmt.Errorf("cannot read section %d: %w", s.id, r.err)
		}
	}
	return f, nil
}

// readModule checks the header of a core module and splits it into sections.
func readModule(module []byte) ([]section, error) {
	if len(module) < 8 || !bytes.Equal(module[:4], wasmHeader[:4]) {
		return nil, errors.New("not a WebAssembly module (no \\0asm header)")
	}
	if !bytes.Equal(module[4:8], wasmHeader[4:]) {
		return nil, fmt.Errorf("unsupported WebAssembly binary version %x (components are not supported: build a core module for WASI preview1)", module[4:8])
	}
	return readSections(module[8:])
}

func readSections(b []byte) ([]section, error) {
	var secs []section
	r := reader{b: b}
	for r.err == nil && r.i < len(r.b) {
		id := r.byte()
		size := r.u32()
		body := r.bytes(int(size))
		if r.err != nil {
			return nil, fmt.Errorf("cannot read section %d: %w", id, r.err)
		}
		secs = append(secs, section{id: id, body: body})
	}
	return secs, r.err
}

func appendSection(out []byte, id byte, body []byte) []byte {
	out = append(out, id)
	out = binary.AppendUvarint(out, uint64(len(body)))
	return append(out, body...)
}

func isDebugSection(body []byte) bool {
	r := reader{b: body}
	n := r.u32()
	name := r.bytes(int(n))
	return r.err == nil && strings.HasPrefix(string(name), ".debug_")
}

// importEntry is one import: its module, name and kind (0 function,
// 1 table, 2 memory, 3 global, 4 tag).
type importEntry struct {
	module, name string
	kind         byte
}

// readImports reads an import section.
func readImports(b []byte) ([]importEntry, error) {
	r := reader{b: b}
	n := r.u32()
	var out []importEntry
	for k := uint32(0); k < n && r.err == nil; k++ {
		module := string(r.bytes(int(r.u32())))
		name := string(r.bytes(int(r.u32())))
		out = append(out, importEntry{module: module, name: name, kind: r.skipImportDesc()})
	}
	if r.err != nil {
		return nil, fmt.Errorf("cannot read import section: %w", r.err)
	}
	return out, nil
}

// skipImportDesc reads an import's kind and description; it returns the kind.
func (r *reader) skipImportDesc() byte {
	kind := r.byte()
	switch kind {
	case 0x00: // function: type index
		r.u32()
	case 0x01: // table: reference type, limits
		r.leb()
		r.limits()
	case 0x02: // memory: limits
		r.limits()
	case 0x03: // global: value type, mutability
		r.leb()
		r.byte()
	case 0x04: // tag: attribute, type index
		r.byte()
		r.u32()
	default:
		r.fail(fmt.Errorf("unknown import kind 0x%02x", kind))
	}
	return kind
}

// addGlobals appends the interrupt flag `(global (mut i32) (i32.const 0))`
// and the countdown `(global (mut i32) (i32.const checkInterval))` to a
// global section body (nil for none).
func addGlobals(body []byte) []byte {
	r := reader{b: body}
	n := uint32(0)
	if len(body) > 0 {
		n = r.u32()
	}
	out := binary.AppendUvarint(nil, uint64(n+2))
	out = append(out, body[r.i:]...)
	out = append(out, 0x7f, 0x01, 0x41, 0x00, 0x0b)
	out = append(out, 0x7f, 0x01, 0x41)
	out = appendSLEB(out, checkInterval)
	return append(out, 0x0b)
}

// addExportsChecked is addExports on an existing export section, refusing a
// module that already uses sluice's reserved export names.
func addExportsChecked(body []byte, f moduleFacts) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	for k := uint32(0); k < n && r.err == nil; k++ {
		name := string(r.bytes(int(r.u32())))
		r.byte()
		r.u32()
		if name == interruptExport || name == startExport {
			return nil, fmt.Errorf("cannot load wasm module: it exports %q, a name sluice reserves", name)
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("cannot read export section: %w", r.err)
	}
	return addExports(body, f), nil
}

// addExports appends the interrupt flag's export, and the start function's if
// there is one, to an export section body (nil for none).
func addExports(body []byte, f moduleFacts) []byte {
	r := reader{b: body}
	n := uint32(0)
	if len(body) > 0 {
		n = r.u32()
	}
	add := uint32(1)
	if f.start >= 0 {
		add++
	}
	out := binary.AppendUvarint(nil, uint64(n+add))
	out = append(out, body[r.i:]...)
	out = appendExport(out, interruptExport, 0x03, f.globals)
	if f.start >= 0 {
		out = appendExport(out, startExport, 0x00, f.start)
	}
	return out
}

// appendSLEB appends v in signed LEB128, the encoding of i32.const
// (encoding/binary's Varint is zigzag, not this).
func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendExport(out []byte, name string, kind byte, index int) []byte {
	out = binary.AppendUvarint(out, uint64(len(name)))
	out = append(out, name...)
	out = append(out, kind)
	return binary.AppendUvarint(out, uint64(index))
}

// checkCode is the check, for the flag at global index flag and the
// countdown at flag+1:
//
//	global.get $countdown
//	i32.const 1
//	i32.sub
//	global.set $countdown
//	global.get $countdown
//	i32.eqz
//	if
//	  global.get $flag
//	  if
//	    unreachable
//	  end
//	  i32.const 0
//	  memory.grow 0
//	  drop
//	  i32.const checkInterval
//	  global.set $countdown
//	end
func checkCode(flag uint32) []byte {
	get := func(b []byte, op byte, idx uint32) []byte { return binary.AppendUvarint(append(b, op), uint64(idx)) }
	c := get(nil, 0x23, flag+1)
	c = append(c, 0x41, 0x01, 0x6b)
	c = get(c, 0x24, flag+1)
	c = get(c, 0x23, flag+1)
	c = append(c, 0x45, 0x04, 0x40)
	c = get(c, 0x23, flag)
	c = append(c, 0x04, 0x40, 0x00, 0x0b)
	c = append(c, 0x41, 0x00, 0x40, 0x00, 0x1a)
	c = appendSLEB(append(c, 0x41), checkInterval)
	c = get(c, 0x24, flag+1)
	return append(c, 0x0b)
}

// instrumentCode rewrites every function body of a code section.
func instrumentCode(b []byte, flag uint32) ([]byte, error) {
	check := checkCode(flag)

	r := reader{b: b}
	n := r.u32()
	out := binary.AppendUvarint(make([]byte, 0, len(b)+len(b)/8), uint64(n))
	var fn []byte
	for k := uint32(0); k < n; k++ {
		body := r.bytes(int(r.u32()))
		if r.err != nil {
			return nil, fmt.Errorf("function %d: %w", k, r.err)
		}
		var err error
		if fn, err = instrumentBody(fn[:0], body, check); err != nil {
			return nil, fmt.Errorf("function %d: %w", k, err)
		}
		out = binary.AppendUvarint(out, uint64(len(fn)))
		out = append(out, fn...)
	}
	if r.i != len(b) {
		return nil, errors.New("trailing bytes after the last function")
	}
	return out, nil
}

// instrumentBody copies one function body (locals, then instructions) to out,
// adding check at the start and after each loop's block type.
func instrumentBody(out, body, check []byte) ([]byte, error) {
	r := reader{b: body}
	groups := r.u32()
	for k := uint32(0); k < groups; k++ {
		r.u32() // count
		r.leb() // value type
	}
	if r.err != nil {
		return nil, r.err
	}
	out = append(append(out, body[:r.i]...), check...)
	from := r.i // body[from:r.i] is not yet copied
	for r.err == nil && r.i < len(r.b) {
		op := r.byte()
		if op == 0x03 { // loop
			r.leb() // block type
			out = append(out, body[from:r.i]...)
			out = append(out, check...)
			from = r.i
			continue
		}
		r.skipImmediates(op)
	}
	if r.err != nil {
		return nil, r.err
	}
	return append(out, body[from:]...), nil
}

// reader reads the binary format; the first error sticks and every later
// read returns zero.
type reader struct {
	b   []byte
	i   int
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.i = len(r.b)
}

func (r *reader) byte() byte {
	if r.i >= len(r.b) {
		r.fail(errors.New("unexpected end"))
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || n > len(r.b)-r.i {
		r.fail(errors.New("unexpected end"))
		return nil
	}
	s := r.b[r.i : r.i+n]
	r.i += n
	return s
}

// leb skips a LEB128 number (signed or unsigned, up to 64 bits).
func (r *reader) leb() {
	for k := 0; k < 10; k++ {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	r.fail(errors.New("LEB128 number too long"))
}

func (r *reader) u32() uint32 {
	v, n := binary.Uvarint(r.b[r.i:])
	if n <= 0 || n > 5 || v > 1<<32-1 {
		r.fail(errors.New("bad u32"))
		return 0
	}
	r.i += n
	return uint32(v)
}

func (r *reader) limits() {
	flags := r.byte()
	r.u32()
	if flags&0x01 != 0 {
		r.u32()
	}
}

// memarg skips an alignment (whose bit 6 announces a memory index, as in
// the multi-memory proposal) and an offset.
func (r *reader) memarg() {
	if r.u32()&0x40 != 0 {
		r.u32()
	}
	r.leb()
}

// skipImmediates skips the immediates of the instruction whose opcode was
// just read. Unknown opcodes are an error: skipping them wrongly would
// misread everything after.
func (r *reader) skipImmediates(op byte) {
	switch {
	case op == 0x00, op == 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b,
		op >= 0x45 && op <= 0xc4, op == 0xd1:
		// no immediates
	case op == 0x02, op == 0x04: // block, if: block type
		r.leb()
	case op == 0x0c, op == 0x0d, op == 0x10, op == 0x12, op >= 0x20 && op <= 0x26, op == 0xd2:
		r.u32() // label, function, local, global or table index
	case op == 0x0e: // br_table
		n := r.u32()
		for k := uint32(0); k <= n && r.err == nil; k++ {
			r.u32()
		}
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select with types
		r.bytes(int(r.u32()))
	case op >= 0x28 && op <= 0x3e:
		r.memarg()
	case op == 0x3f, op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41, op == 0x42, op == 0xd0: // i32.const, i64.const, ref.null
		r.leb()
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xfc:
		r.skipFC(r.u32())
	case op == 0xfd:
		r.skipSIMD(r.u32())
	case op == 0xfe:
		r.skipAtomic(r.u32())
	default:
		r.fail(fmt.Errorf("unsupported opcode 0x%02x at byte %d", op, r.i-1))
	}
}

func (r *reader) skipFC(sub uint32) {
	switch {
	case sub <= 7: // saturating truncations
	case sub == 8, sub == 10, sub == 12, sub == 14: // memory.init, memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	case sub <= 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.u32()
	default:
		r.fail(fmt.Errorf("unsupported opcode 0xfc %d", sub))
	}
}

func (r *reader) skipSIMD(sub uint32) {
	switch {
	case sub <= 11, sub == 92, sub == 93: // loads and stores
		r.memarg()
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load and store lane
		r.memarg()
		r.byte()
	}
}

func (r *reader) skipAtomic(sub uint32) {
	if sub == 0x03 { // atomic.fence
		r.byte()
		return
	}
	r.memarg()
}

// wasiModule is the only module a wasm function may import from: the host
// instantiates WASI preview1 and nothing else.
const wasiModule = "wasi_snapshot_preview1"

// CheckModule does the checks on a wasm module that need no compiling, so
// that a deploy can refuse a module that could never run: it must be a core
// module (not a component) whose imports all come from WASI preview1.
func CheckModule(module []byte) error {
	secs, err := readModule(module)
	if err != nil {
		return err
	}
	return checkImports(secs)
}

// checkImports refuses imports from anything but WASI preview1.
func checkImports(secs []section) error {
	for _, s := range secs {
		if s.id != secImport {
			continue
		}
		imports, err := readImports(s.body)
		if err != nil {
			return err
		}
		for _, im := range imports {
			if im.module != wasiModule {
				return fmt.Errorf("the module imports %s.%s, but sluice provides only %s (AssemblyScript: replace env.abort with asc's --use abort=...)", im.module, im.name, wasiModule)
			}
		}
	}
	return nil
}
