package imapsort

import (
	"cmp"
	"slices"
	"strconv"
)

// Message is one message to sort or thread, with its keys. The slice given to Sort and
// Thread is in mailbox order (ascending sequence numbers), the final tie-breaker of
// every comparison (RFC 5256 §3).
type Message struct {
	// Num is what the response shows: the sequence number or the UID.
	Num uint32
	// Arrival is the INTERNALDATE, Sent the Date header, as Unix seconds; Sent is 0
	// when the Date header is missing or unreadable.
	Arrival, Sent int64
	Size          int64 // RFC822.SIZE
	Keys          *Keys
}

// date is the sent date of §2.2: the Date header, else the internal date.
func (m *Message) date() int64 {
	if m.Sent != 0 {
		return m.Sent
	}
	return m.Arrival
}

// Criterion is one sort key of SORT: ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT, TO (RFC
// 5256 §3), DISPLAYFROM, DISPLAYTO (RFC 5957), in upper case; Reverse is REVERSE.
type Criterion struct {
	Key     string
	Reverse bool
}

// Known reports whether key is a sort key Sort knows.
func Known(key string) bool {
	switch key {
	case "ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO":
		return true
	}
	return false
}

func compareBy(key string, a, b *Message) int {
	switch key {
	case "ARRIVAL":
		return cmp.Compare(a.Arrival, b.Arrival)
	case "DATE":
		return cmp.Compare(a.date(), b.date())
	case "SIZE":
		return cmp.Compare(a.Size, b.Size)
	}
	ka, kb := a.Keys, b.Keys
	if ka == nil || kb == nil {
		// A message whose keys are unknown sorts as if its fields were empty.
		ka, kb = orEmpty(ka), orEmpty(kb)
	}
	switch key {
	case "CC":
		return cmp.Compare(ka.Cc, kb.Cc)
	case "FROM":
		return cmp.Compare(ka.From, kb.From)
	case "TO":
		return cmp.Compare(ka.To, kb.To)
	case "SUBJECT":
		return cmp.Compare(ka.Subject, kb.Subject)
	case "DISPLAYFROM":
		return cmp.Compare(ka.DisplayFrom, kb.DisplayFrom)
	case "DISPLAYTO":
		return cmp.Compare(ka.DisplayTo, kb.DisplayTo)
	}
	return 0
}

var emptyKeys = &Keys{}

func orEmpty(k *Keys) *Keys {
	if k == nil {
		return emptyKeys
	}
	return k
}

// Sort orders msgs by the criteria (RFC 5256 §3); messages equal under all of them
// keep mailbox order. It returns their numbers.
func Sort(msgs []Message, crit []Criterion) []uint32 {
	order := make([]int, len(msgs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int {
		for _, c := range crit {
			r := compareBy(c.Key, &msgs[i], &msgs[j])
			if c.Reverse {
				r = -r
			}
			if r != 0 {
				return r
			}
		}
		return cmp.Compare(i, j)
	})
	out := make([]uint32, len(order))
	for k, i := range order {
		out[k] = msgs[i].Num
	}
	return out
}

// Node is one node of a thread tree. A Node with Num 0 stands for a message that is
// referred to but not in the set (a dummy, RFC 5256 §4).
type Node struct {
	Num      uint32
	Children []*Node
}

// AppendThreads appends threads in the syntax of the THREAD response (RFC 5256 §4):
// "(3 6 (4 23)(44 7 96))": a node with one child continues its list, a node with
// several opens one parenthesized list per child.
func AppendThreads(b []byte, threads []*Node) []byte {
	for _, t := range threads {
		b = append(b, '(')
		b = appendChain(b, t)
		b = append(b, ')')
	}
	return b
}

func appendChain(b []byte, n *Node) []byte {
	first := true
	for {
		if n.Num != 0 {
			if !first {
				b = append(b, ' ')
			}
			b = strconv.AppendUint(b, uint64(n.Num), 10)
			first = false
		}
		switch len(n.Children) {
		case 0:
			return b
		case 1:
			n = n.Children[0]
			continue
		}
		if !first {
			b = append(b, ' ')
		}
		for _, c := range n.Children {
			b = append(b, '(')
			b = appendChain(b, c)
			b = append(b, ')')
		}
		return b
	}
}
