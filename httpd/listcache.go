package main

import (
	"container/list"
	"sync"
)

// The message list asks imapd to SORT or THREAD the whole folder, and a page shows 50
// of the answer. The answer depends only on which messages the folder holds (their
// sort keys never change: RFC 5256 sorts on the envelope, the dates and the size), so
// httpd keeps it, for every session of the user, under the folder's view (folderView):
// a list page of a folder that did not change costs one FETCH of the page's messages.
// New mail or an expunge changes UIDNEXT or EXISTS and so the key; the old answer is
// then never asked for again and ages out.

// orderKey names an answer: whose folder, in which state, in which order.
type orderKey struct {
	user  string
	view  folderView
	order string // "date", "subject", ... with "-r" for REVERSE; "threads"
}

// order is a cached answer: the UIDs in sort order, or the threads.
type order struct {
	uids    []uint32
	threads []thread
}

// size is what an order weighs against orderCache's budget, in UIDs.
func (o *order) size() int {
	n := len(o.uids)
	for _, t := range o.threads {
		n += len(t.uids) + 4
	}
	return n + 16
}

// orderCache holds the most recently used orders up to a budget of UIDs.
type orderCache struct {
	max int

	mu   sync.Mutex
	used int
	lru  *list.List // of *orderItem, most recent first
	m    map[orderKey]*list.Element
}

type orderItem struct {
	key orderKey
	o   *order
}

// orderCacheUIDs is the budget of the order cache: 4 MiB of UIDs (a 10,000-message
// folder in every order and threaded weighs under 100,000).
const orderCacheUIDs = 1 << 20

func newOrderCache(max int) *orderCache {
	return &orderCache{max: max, lru: list.New(), m: map[orderKey]*list.Element{}}
}

// get returns the order under k, nil if none.
func (c *orderCache) get(k orderKey) *order {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[k]
	if e == nil {
		return nil
	}
	c.lru.MoveToFront(e)
	return e.Value.(*orderItem).o
}

// put keeps o under k, dropping the least recently used orders past the budget. An
// order larger than the whole budget is not kept.
func (c *orderCache) put(k orderKey, o *order) {
	n := o.size()
	if n > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[k]; e != nil {
		c.used -= e.Value.(*orderItem).o.size()
		c.lru.Remove(e)
	}
	c.m[k] = c.lru.PushFront(&orderItem{k, o})
	c.used += n
	for c.used > c.max {
		e := c.lru.Back()
		it := e.Value.(*orderItem)
		c.lru.Remove(e)
		delete(c.m, it.key)
		c.used -= it.o.size()
	}
}
