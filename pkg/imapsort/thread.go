package imapsort

import (
	"cmp"
	"slices"
)

// Thread algorithms (RFC 5256 §3 and the IANA registry).
const (
	OrderedSubject = "ORDEREDSUBJECT"
	References     = "REFERENCES"
)

// Thread groups msgs into threads by the algorithm (OrderedSubject or References, RFC
// 5256 §4) and returns the threads in order.
func Thread(msgs []Message, algorithm string) []*Node {
	if algorithm == OrderedSubject {
		return orderedSubject(msgs)
	}
	return references(msgs)
}

// byDate orders messages by sent date (§2.2), then mailbox order.
func byDate(msgs []Message) func(i, j int) int {
	return func(i, j int) int {
		if c := cmp.Compare(msgs[i].date(), msgs[j].date()); c != 0 {
			return c
		}
		return cmp.Compare(i, j)
	}
}

// orderedSubject: messages sorted by base subject, then sent date; each run of one
// base subject is a thread whose first message is the parent of the others; threads
// are ordered by the sent date of their first message.
func orderedSubject(msgs []Message) []*Node {
	order := make([]int, len(msgs))
	for i := range order {
		order[i] = i
	}
	date := byDate(msgs)
	slices.SortFunc(order, func(i, j int) int {
		if c := cmp.Compare(orEmpty(msgs[i].Keys).Subject, orEmpty(msgs[j].Keys).Subject); c != 0 {
			return c
		}
		return date(i, j)
	})
	type thread struct {
		first int
		node  *Node
	}
	var threads []thread
	for k, i := range order {
		n := &Node{Num: msgs[i].Num}
		if k > 0 && orEmpty(msgs[i].Keys).Subject == orEmpty(msgs[order[k-1]].Keys).Subject {
			t := threads[len(threads)-1].node
			t.Children = append(t.Children, n)
			continue
		}
		threads = append(threads, thread{i, n})
	}
	slices.SortFunc(threads, func(a, b thread) int { return date(a.first, b.first) })
	out := make([]*Node, len(threads))
	for i, t := range threads {
		out[i] = t.node
	}
	return out
}

// container is a node of the REFERENCES algorithm: a message (msg >= 0) or a dummy
// (msg < 0) for an id that only references name.
type container struct {
	msg      int
	parent   *container
	children []*container
}

func (c *container) isDummy() bool { return c.msg < 0 }

// reaches reports whether d is c or below it.
func (c *container) reaches(d *container) bool {
	for ; d != nil; d = d.parent {
		if d == c {
			return true
		}
	}
	return false
}

func (c *container) unlink() {
	if p := c.parent; p != nil {
		p.children = slices.DeleteFunc(p.children, func(x *container) bool { return x == c })
		c.parent = nil
	}
}

func (c *container) adopt(child *container) {
	child.unlink()
	child.parent = c
	c.children = append(c.children, child)
}

// references is the REFERENCES algorithm of RFC 5256 §4.
func references(msgs []Message) []*Node {
	byID := map[string]*container{}
	get := func(id string) *container {
		c := byID[id]
		if c == nil {
			c = &container{msg: -1}
			byID[id] = c
		}
		return c
	}
	var all []*container
	for i := range msgs {
		k := orEmpty(msgs[i].Keys)
		// (1) A message without a Message-ID, or with one seen already, is unique.
		var c *container
		if id := k.MessageID; id != "" {
			if old := byID[id]; old == nil || old.isDummy() {
				c = get(id)
				c.msg = i
			}
		}
		if c == nil {
			c = &container{msg: i}
		}
		all = append(all, c)
		// (1.A) Link the references in order, parent before child, unless one
		// already has a parent or a link would make a loop.
		var prev *container
		for _, ref := range k.References {
			r := get(ref)
			if prev != nil && r.parent == nil && !r.reaches(prev) && r != prev {
				prev.adopt(r)
			}
			prev = r
		}
		// (1.B) The last reference is the message's parent, replacing the one that
		// other messages' References presumed; none when that would make a loop
		// (as Dovecot does: the presumed parent goes all the same).
		c.unlink()
		if prev != nil && !c.reaches(prev) {
			prev.adopt(c)
		}
	}
	// (2) The root set: containers without a parent.
	var roots []*container
	seen := map[*container]bool{}
	addRoot := func(c *container) {
		for c.parent != nil {
			c = c.parent
		}
		if !seen[c] {
			seen[c] = true
			roots = append(roots, c)
		}
	}
	for _, c := range all {
		addRoot(c)
	}
	// (3) Prune dummies.
	roots = prune(roots, true)
	// (4) Sort the top level by sent date (a dummy by its first child's, its
	// children sorted first).
	dateOf := func(c *container) (int64, int) {
		for c.isDummy() && len(c.children) > 0 {
			c = c.children[0]
		}
		if c.isDummy() {
			return 0, -1
		}
		return msgs[c.msg].date(), c.msg
	}
	sortSiblings := func(l []*container) {
		slices.SortStableFunc(l, func(a, b *container) int {
			da, ia := dateOf(a)
			db, ib := dateOf(b)
			if c := cmp.Compare(da, db); c != 0 {
				return c
			}
			return cmp.Compare(ia, ib)
		})
	}
	for _, r := range roots {
		if r.isDummy() {
			sortSiblings(r.children)
		}
	}
	sortSiblings(roots)
	// (5) Group the top level by base subject.
	subjectOf := func(c *container) string {
		if c.isDummy() {
			if len(c.children) == 0 {
				return ""
			}
			c = c.children[0]
		}
		return orEmpty(msgs[c.msg].Keys).Subject
	}
	isReply := func(c *container) bool { return !c.isDummy() && orEmpty(msgs[c.msg].Keys).Reply }
	table := map[string]*container{}
	for _, r := range roots {
		s := subjectOf(r)
		if s == "" {
			continue
		}
		old := table[s]
		if old == nil || r.isDummy() && !old.isDummy() || isReply(old) && !isReply(r) && !old.isDummy() {
			table[s] = r
		}
	}
	// A root merged under another gets a parent; a root that a new dummy holds
	// with another is replaced by the dummy.
	repl := map[*container]*container{}
	for _, r := range roots {
		s := subjectOf(r)
		t := table[s]
		if s == "" || t == r || t == nil || r.parent != nil {
			continue
		}
		switch {
		case t.isDummy() && r.isDummy():
			for _, ch := range slices.Clone(r.children) {
				t.adopt(ch)
			}
		case t.isDummy():
			t.adopt(r)
		case !isReply(t) && isReply(r):
			t.adopt(r)
		default:
			// Both replies or both not: a new dummy holds both, in the table's place.
			d := &container{msg: -1}
			repl[t] = d
			d.adopt(t)
			d.adopt(r)
			table[s] = d
		}
	}
	kept := roots[:0]
	for _, r := range roots {
		if d := repl[r]; d != nil {
			kept = append(kept, d)
		} else if r.parent == nil && (!r.isDummy() || len(r.children) > 0) {
			kept = append(kept, r)
		}
	}
	roots = kept
	// (6) Sort every level below the top by sent date; the top once more, as the
	// merges may have changed dummies' first children.
	var sortAll func(l []*container)
	sortAll = func(l []*container) {
		for _, c := range l {
			sortAll(c.children)
		}
		sortSiblings(l)
	}
	sortAll(roots)
	out := make([]*Node, len(roots))
	for i, r := range roots {
		out[i] = toNode(msgs, r)
	}
	return out
}

// prune applies step (3) to a list of siblings: a dummy without children goes, a
// dummy with children gives them to its parent's level, except a top-level dummy
// with more than one child, which stays.
func prune(l []*container, top bool) []*container {
	var out []*container
	for _, c := range l {
		c.children = prune(c.children, false)
		for _, ch := range c.children {
			ch.parent = c
		}
		if !c.isDummy() {
			out = append(out, c)
			continue
		}
		switch {
		case len(c.children) == 0:
		case top && len(c.children) > 1:
			out = append(out, c)
		default:
			for _, ch := range c.children {
				ch.parent = c.parent
				out = append(out, ch)
			}
		}
	}
	return out
}

func toNode(msgs []Message, c *container) *Node {
	n := &Node{}
	if !c.isDummy() {
		n.Num = msgs[c.msg].Num
	}
	for _, ch := range c.children {
		n.Children = append(n.Children, toNode(msgs, ch))
	}
	return n
}
