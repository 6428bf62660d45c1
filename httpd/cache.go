package main

import (
	"container/list"
	"sync"
)

// lruCache keeps the most recently used values up to a budget: each value weighs
// size(value) against max, and putting one past the budget drops the least recently
// used ones. A value heavier than the whole budget is not kept. The order cache
// (listcache.go) and the body cache (bodycache.go) are lruCaches.
type lruCache[K comparable, V any] struct {
	max  int
	size func(V) int

	mu   sync.Mutex
	used int
	lru  *list.List // of *lruItem[K, V], most recent first
	m    map[K]*list.Element
}

type lruItem[K comparable, V any] struct {
	key K
	v   V
	n   int
}

func newLRUCache[K comparable, V any](max int, size func(V) int) *lruCache[K, V] {
	return &lruCache[K, V]{max: max, size: size, lru: list.New(), m: map[K]*list.Element{}}
}

// get returns the value under k, and whether there is one.
func (c *lruCache[K, V]) get(k K) (v V, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[k]
	if e == nil {
		return v, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*lruItem[K, V]).v, true
}

// put keeps v under k, dropping the least recently used values past the budget.
func (c *lruCache[K, V]) put(k K, v V) {
	n := c.size(v)
	if n > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[k]; e != nil {
		c.used -= e.Value.(*lruItem[K, V]).n
		c.lru.Remove(e)
	}
	c.m[k] = c.lru.PushFront(&lruItem[K, V]{k, v, n})
	c.used += n
	for c.used > c.max {
		e := c.lru.Back()
		it := e.Value.(*lruItem[K, V])
		c.lru.Remove(e)
		delete(c.m, it.key)
		c.used -= it.n
	}
}
