package resolver

import (
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Cache bounds. remote asks the same few questions (MX, A, AAAA, TLSA, the MTA-STS TXT
// record) for every message to a destination; the cache answers the repeats for as long
// as the records' TTL allows, so that a burst of mail to one domain costs one round of
// lookups instead of one per message.
const (
	// maxCacheTTL caps how long an answer is kept, whatever its TTL: a change of MX
	// is seen within this time even behind a resolver that hands out huge TTLs.
	maxCacheTTL = time.Hour
	// maxNegativeTTL caps how long "no such name" or "no such record" is kept
	// (RFC 2308 §5 suggests at most hours; mail prefers to see a new record soon).
	maxNegativeTTL = 5 * time.Minute
	// maxCacheEntries bounds the memory the cache may take.
	maxCacheEntries = 10000
)

type cacheKey struct {
	name  string // lower case, fully qualified
	qtype uint16
}

type cacheEntry struct {
	answer  *Answer // nil for NXDOMAIN; NODATA keeps its Answer without records, AD bit and all
	err     error   // the NXDOMAIN error; nil otherwise
	expires time.Time
}

// cache holds answers until their TTL runs out. Temporary failures are never kept.
// The zero value is ready to use.
type cache struct {
	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
	now     func() time.Time // for tests; time.Now when nil
}

func (c *cache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// get returns a cached answer (or a cached NXDOMAIN error) and whether there was one.
// The Answer is a copy whose Records the caller may reorder.
func (c *cache) get(k cacheKey) (*Answer, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil, nil, false
	}
	if !c.clock().Before(e.expires) {
		delete(c.entries, k)
		return nil, nil, false
	}
	if e.answer == nil {
		return nil, e.err, true
	}
	a := *e.answer
	a.Records = append([]dns.RR(nil), e.answer.Records...)
	return &a, nil, true
}

// put keeps the outcome of a query for as long as the response's TTLs allow: the
// smallest TTL of the answer section for records (RFC 2181 §5.2: the records of a set
// share one TTL, and a CNAME chain is only as fresh as its shortest link), the SOA's
// negative TTL for NODATA and NXDOMAIN (RFC 2308 §5: the lesser of the SOA record's TTL
// and its MINIMUM field). A response without records nor SOA is not kept.
func (c *cache) put(k cacheKey, resp *dns.Msg, a *Answer, nxdomain error) {
	var ttl time.Duration
	if a != nil && len(a.Records) > 0 {
		least := uint32(1<<32 - 1)
		for _, rr := range resp.Answer {
			least = minTTL(least, rr.Header().Ttl)
		}
		ttl = min(time.Duration(least)*time.Second, maxCacheTTL)
	} else {
		for _, rr := range resp.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl = min(time.Duration(minTTL(soa.Hdr.Ttl, soa.Minttl))*time.Second, maxNegativeTTL)
			}
		}
	}
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	if c.entries == nil {
		c.entries = map[cacheKey]cacheEntry{}
	}
	if len(c.entries) >= maxCacheEntries {
		c.evict(now)
	}
	if a != nil {
		cp := *a // the caller keeps a and may reorder its Records
		cp.Records = append([]dns.RR(nil), a.Records...)
		a = &cp
	}
	c.entries[k] = cacheEntry{answer: a, err: nxdomain, expires: now.Add(ttl)}
}

// evict drops the expired entries, and when that is not enough, any tenth of the
// cache (map order is random enough for a cache that only saves round trips).
func (c *cache) evict(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	drop := len(c.entries) - maxCacheEntries*9/10
	for k := range c.entries {
		if drop <= 0 {
			break
		}
		delete(c.entries, k)
		drop--
	}
}

func minTTL(a, b uint32) uint32 {
	if a < b {
		return a
	}
	return b
}

func cacheKeyOf(fqdn string, qtype uint16) cacheKey {
	return cacheKey{name: strings.ToLower(fqdn), qtype: qtype}
}
