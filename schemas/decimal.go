package schemas

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// parseDecimal converts a JSON number or string holding a decimal number
// (like 12.50, "-0.001" or 1.5e3) to t's unscaled value at t's scale,
// exactly: it reads the digits of the text and never goes through a float,
// so 0.1 is 0.1. A value with more digits after the point than the scale
// does not fit (rather than being rounded: rounding money silently is the
// bug decimals exist to avoid), nor does one with more digits before the
// point than precision minus scale. Trailing zeros after the point do not
// count, so 1.50 fits decimal(5,1).
func parseDecimal(t *typ, raw []byte) (any, string) {
	text := raw
	if raw[0] == '"' {
		s, ok := unquote(raw)
		if !ok {
			return nil, "not a decimal number or string"
		}
		text = []byte(s)
	}
	neg, digits, exp, ok := splitDecimal(text)
	if !ok {
		return nil, "not a decimal number (like 12.50, -0.5 or \"1e3\")"
	}
	if len(digits) == 0 {
		return decimal128.Num{}, "" // zero, whatever the exponent
	}
	if exp < 0 && int64(-exp) > int64(t.scale) {
		return nil, fmt.Sprintf("has %s after the point, more than the scale %d allows; values are not rounded", digitCount(-exp), t.scale)
	}
	if intDigits := int64(len(digits)) + exp; intDigits > int64(t.prec-t.scale) {
		return nil, fmt.Sprintf("has %s before the point, more than %s allows (%d)", digitCount(intDigits), t.canon, t.prec-t.scale)
	}
	var n decimal128.Num
	ten := decimal128.FromU64(10)
	for _, d := range digits {
		n = n.Mul(ten).Add(decimal128.FromU64(uint64(d - '0')))
	}
	n = n.Mul(decimal128.GetScaleMultiplier(int(exp + int64(t.scale))))
	if neg {
		n = n.Negate()
	}
	return n, ""
}

// splitDecimal splits text of the form [+-]digits[.digits][(e|E)[+-]digits]
// (at least one digit before or after the point) into its sign, its
// significant digits (no leading or trailing zeros; empty for zero) and the
// power of ten they are to be multiplied by.
func splitDecimal(text []byte) (neg bool, digits []byte, exp int64, ok bool) {
	i := 0
	if i < len(text) && (text[i] == '+' || text[i] == '-') {
		neg = text[i] == '-'
		i++
	}
	intStart := i
	for i < len(text) && isDigit(text[i]) {
		i++
	}
	intPart := text[intStart:i]
	var frac []byte
	if i < len(text) && text[i] == '.' {
		i++
		fracStart := i
		for i < len(text) && isDigit(text[i]) {
			i++
		}
		frac = text[fracStart:i]
	}
	if len(intPart)+len(frac) == 0 {
		return false, nil, 0, false
	}
	if i < len(text) && (text[i] == 'e' || text[i] == 'E') {
		if exp, i, ok = parseExponent(text, i+1); !ok {
			return false, nil, 0, false
		}
	}
	if i != len(text) {
		return false, nil, 0, false
	}
	digits = append(append(make([]byte, 0, len(intPart)+len(frac)), intPart...), frac...)
	exp -= int64(len(frac))
	for len(digits) > 0 && digits[0] == '0' {
		digits = digits[1:]
	}
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	return neg, digits, exp, true
}

// parseExponent reads [+-]digits at text[i:], clamped far beyond any
// precision so a huge exponent cannot overflow.
func parseExponent(text []byte, i int) (int64, int, bool) {
	neg := false
	if i < len(text) && (text[i] == '+' || text[i] == '-') {
		neg = text[i] == '-'
		i++
	}
	start := i
	var e int64
	for i < len(text) && isDigit(text[i]) {
		e = min(e*10+int64(text[i]-'0'), 1e9)
		i++
	}
	if i == start {
		return 0, i, false
	}
	if neg {
		e = -e
	}
	return e, i, true
}

func digitCount(n int64) string {
	if n == 1 {
		return "1 digit"
	}
	return fmt.Sprintf("%d digits", n)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
