package sieve

import "strings"

// The relational extension (RFC 5231): the match types :value and :count with a
// relation, and the ordering of the comparators, i;ascii-numeric (RFC 4790 §9.1)
// among them.

// relation checks the relation of :value or :count (RFC 5231 §4): one of gt, ge, lt,
// le, eq, ne, a constant.
func (s *Script) relation(t *Test, x Arg) error {
	if err := s.need(x.Pos, "relational", t.match); err != nil {
		return err
	}
	rel := strings.ToLower(x.Strs[0])
	switch rel {
	case "gt", "ge", "lt", "le", "eq", "ne":
	default:
		// RFC 5231 §4: any other relation is an error.
		return errAt(x.Pos, "%s: unknown relation %q (gt, ge, lt, le, eq or ne)", t.match, x.Strs[0])
	}
	t.rel = rel
	return nil
}

// relate tells whether value stands in the relation rel to key by the comparator's
// ordering (RFC 5231 §4.1).
func relate(comparator, rel, value, key string) bool {
	c := order(comparator, value, key)
	switch rel {
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	}
	return false
}

// order compares a and b by the comparator: octets for i;octet, octets after ASCII
// letters are folded for i;ascii-casemap (RFC 4790 §9.2, §9.3), numbers for
// i;ascii-numeric.
func order(comparator, a, b string) int {
	switch comparator {
	case "i;ascii-numeric":
		return numericCompare(a, b)
	case "i;ascii-casemap":
		return strings.Compare(asciiLower(a), asciiLower(b))
	}
	return strings.Compare(a, b)
}

// numericCompare orders two strings by i;ascii-numeric (RFC 4790 §9.1.1): the value of
// a string is the number its leading digits write, and a string that does not start
// with a digit is positive infinity, equal to every other such string. Numbers of any
// length compare exactly.
func numericCompare(a, b string) int {
	na, oka := leadingNumber(a)
	nb, okb := leadingNumber(b)
	switch {
	case !oka && !okb:
		return 0
	case !oka:
		return 1
	case !okb:
		return -1
	}
	if len(na) != len(nb) {
		if len(na) < len(nb) {
			return -1
		}
		return 1
	}
	return strings.Compare(na, nb)
}

// leadingNumber returns the leading digits of s without leading zeros ("" for zero),
// and whether s starts with a digit.
func leadingNumber(s string) (string, bool) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == 0 {
		return "", false
	}
	return strings.TrimLeft(s[:i], "0"), true
}
