package sieve

// The index extension (RFC 5260 §6): :index <fieldno: number> [:last] for the header,
// address and date tests picks one occurrence of each named header field.

// indexArgs checks :index and :last and returns the tags it took.
func (s *Script) indexArgs(t *Test, a argSet) ([]string, error) {
	x, ok := a.tags[":index"]
	l, last := a.tags[":last"]
	if !ok && !last {
		return nil, nil
	}
	if t.Name != "header" && t.Name != "address" && t.Name != "date" {
		if ok {
			return nil, errAt(x.Pos, "%s takes no :index", t.Name)
		}
		return nil, errAt(l.Pos, "%s takes no :last", t.Name)
	}
	if !ok {
		// RFC 5260 §6: :last without :index is an error.
		return nil, errAt(l.Pos, ":last needs :index")
	}
	if err := s.need(x.Pos, "index", ":index"); err != nil {
		return nil, err
	}
	if x.Num < 1 || x.Num > 1<<20 {
		return nil, errAt(x.Pos, ":index counts from 1")
	}
	t.index, t.last = int(x.Num), last
	if last {
		return []string{":index", ":last"}, nil
	}
	return []string{":index"}, nil
}

// pickIndex returns the index'th of the values of one header field, counted from the
// first or with last from the last (RFC 5260 §6): none when there are fewer, all when
// index is 0 (no :index).
func pickIndex(vals []string, index int, last bool) []string {
	if index == 0 {
		return vals
	}
	if index > len(vals) {
		return nil
	}
	if last {
		return vals[len(vals)-index : len(vals)-index+1]
	}
	return vals[index-1 : index]
}
