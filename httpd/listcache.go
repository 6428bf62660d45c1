package main

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
type orderCache struct{ *lruCache[orderKey, *order] }

// orderCacheUIDs is the budget of the order cache: 4 MiB of UIDs (a 10,000-message
// folder in every order and threaded weighs under 100,000).
const orderCacheUIDs = 1 << 20

func newOrderCache(max int) orderCache {
	return orderCache{newLRUCache[orderKey](max, (*order).size)}
}

// get returns the order under k, nil if none.
func (c orderCache) get(k orderKey) *order {
	o, _ := c.lruCache.get(k)
	return o
}
