package smtp

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Param is one ESMTP parameter of a MAIL or RCPT command (RFC 5321 §4.1.2
// esmtp-param).
type Param struct {
	// Key is the esmtp-keyword, upper-cased.
	Key string
	// Value is the esmtp-value as sent, or "" for a keyword without "=value".
	Value string
}

// Params are the ESMTP parameters of one command, in the order sent. The parsers
// guarantee that keys are unique and upper-cased.
type Params []Param

// Get returns the value of the parameter key (any case) and whether it is present.
func (p Params) Get(key string) (string, bool) {
	for _, kv := range p {
		if equalFoldASCII(kv.Key, key) {
			return kv.Value, true
		}
	}
	return "", false
}

// String formats p as on a command line: "KEY=VALUE KEY2", without a leading space.
func (p Params) String() string {
	var b strings.Builder
	for i, kv := range p {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv.Key)
		if kv.Value != "" {
			b.WriteByte('=')
			b.WriteString(kv.Value)
		}
	}
	return b.String()
}

// Size returns the value of the SIZE parameter (RFC 1870 §3: 1*20DIGIT), and whether it
// is present. A malformed value gives ErrParam.
func (p Params) Size() (int64, bool, error) {
	v, ok := p.Get("SIZE")
	if !ok {
		return 0, false, nil
	}
	if v == "" || len(v) > 20 || strings.Trim(v, "0123456789") != "" {
		return 0, true, fmt.Errorf("%w: SIZE=%q", ErrParam, v)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, true, fmt.Errorf("%w: SIZE=%q out of range", ErrParam, v)
	}
	return n, true, nil
}

// Body is the value of the BODY parameter of MAIL.
type Body string

// Values of the BODY parameter.
const (
	Body7Bit       Body = "7BIT"       // RFC 6152 §2
	Body8BitMIME   Body = "8BITMIME"   // RFC 6152 §2
	BodyBinaryMIME Body = "BINARYMIME" // RFC 3030 §3
)

// Body returns the value of the BODY parameter, upper-cased, or "" when it is absent.
// A value other than 7BIT, 8BITMIME and BINARYMIME gives ErrParam.
func (p Params) Body() (Body, error) {
	v, ok := p.Get("BODY")
	if !ok {
		return "", nil
	}
	for _, b := range []Body{Body7Bit, Body8BitMIME, BodyBinaryMIME} {
		if equalFoldASCII(v, string(b)) {
			return b, nil
		}
	}
	return "", fmt.Errorf("%w: BODY=%q", ErrParam, v)
}

// SMTPUTF8 reports whether the SMTPUTF8 parameter is present (RFC 6531 §3.4). It takes
// no value; SMTPUTF8=anything gives ErrParam.
func (p Params) SMTPUTF8() (bool, error) {
	v, ok := p.Get("SMTPUTF8")
	if ok && v != "" {
		return true, fmt.Errorf("%w: SMTPUTF8 takes no value", ErrParam)
	}
	return ok, nil
}

// parseParams parses the text after a path: *(SP esmtp-param), where
// esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 §4.1.2). Runs of spaces and
// trailing spaces are tolerated. esmtp-value may hold UTF-8 when smtputf8 is true
// (RFC 6531 §3.3).
func parseParams(s string, smtputf8 bool) (Params, error) {
	var params Params
	for field := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ' ' }) {
		key, value, hasValue := strings.Cut(field, "=")
		if err := checkKeyword(key); err != nil {
			return nil, err
		}
		if hasValue {
			if err := checkValue(value, smtputf8); err != nil {
				return nil, err
			}
		}
		key = strings.ToUpper(key)
		if _, dup := params.Get(key); dup {
			return nil, fmt.Errorf("%w: %s given twice", ErrParam, key)
		}
		params = append(params, Param{Key: key, Value: value})
	}
	return params, nil
}

// checkKeyword checks esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
func checkKeyword(k string) error {
	if k == "" || k[0] == '-' {
		return fmt.Errorf("%w: malformed keyword", ErrParam)
	}
	for i := 0; i < len(k); i++ {
		if !isAlnum(k[i]) && k[i] != '-' {
			return fmt.Errorf("%w: malformed keyword", ErrParam)
		}
	}
	return nil
}

// checkValue checks esmtp-value = 1*(%d33-60 / %d62-126), plus UTF8-non-ascii under
// SMTPUTF8 (RFC 6531 §3.3).
func checkValue(v string, smtputf8 bool) error {
	if v == "" {
		return fmt.Errorf("%w: empty value", ErrParam)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 33 && c <= 126 && c != '=':
		case c >= utf8.RuneSelf && smtputf8:
		default:
			return fmt.Errorf("%w: invalid character in value", ErrParam)
		}
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: invalid UTF-8 in value", ErrParam)
	}
	return nil
}
